"""The model at serving time and its contract with training: text normalization, featurizer,
taxonomy, bundles and their metadata, the Classifier, file prediction. No Kafka, no TensorFlow."""
