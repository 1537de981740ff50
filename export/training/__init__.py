"""Offline training: hyper-parameters, networks, the fit loop, thresholds, ONNX export."""
