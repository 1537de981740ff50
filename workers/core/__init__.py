"""Shared core of training and serving: settings, errors, logging, event contracts and codec,
product text, category paths, products files, Redis keys. Imports no other workers subpackage."""
