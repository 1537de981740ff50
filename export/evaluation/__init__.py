"""Offline evaluation of exported bundles: metrics, the TF-IDF baseline, reports."""
