"""The feedback loop: corrections become overrides, training labels and quality figures.

* :mod:`workers.feedback.policy`: trust and agreement rules, validation (pure);
* :mod:`workers.feedback.state`: the per-product state kept in a faust table;
* :mod:`workers.feedback.quality`: acceptance and correction counts (pure);
* :mod:`workers.feedback.tables`: the two faust tables behind typed methods;
* :mod:`workers.feedback.outputs`: the override value, corrected event and label (pure);
* :mod:`workers.feedback.app`: the faust-streaming app (``prodcat feedback``), its lifecycle;
* :mod:`workers.feedback.handler`: what the app does with each message (and parking);
* :mod:`workers.feedback.publisher`: what it writes (Redis overrides, events, dead letters);
* :mod:`workers.feedback.live`: the live model's categories and featurizer, as the app uses them;
* :mod:`workers.feedback.runtime`: its plumbing (credentials, Redis, shutdown);
* :mod:`workers.feedback.metrics`: its Prometheus metrics;
* :mod:`workers.feedback.labels`: ``prodcat labels dump`` for ``prodcat train --labels``.
"""
