"""Offline data: the catalog data model and loaders, the dataset registry, sources, splits."""
