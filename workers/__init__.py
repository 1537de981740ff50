"""prodcat streaming runtime: settings, event codec, featurizer, model bundles, workers."""

__version__ = "0.1.0"
