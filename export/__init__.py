"""prodcat offline package: load catalogs, train, evaluate, export ONNX bundles, publish."""
