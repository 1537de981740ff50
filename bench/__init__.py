"""prodcat benchmarks: run them as modules, e.g. ``python -m bench.classify_bench``.

Results, the commands that reproduce them and the work log are in ``bench/README.md``.
"""
