"""``prodcat clicks``: query categories learned from search clicks (a faust app).

* :mod:`~workers.clicks.tally`: a query's decayed category tally and its label (pure);
* :mod:`~workers.clicks.app`: the faust app (join clicks with categories, tally per query,
  publish query labels);
* :mod:`~workers.clicks.metrics`: its Prometheus metrics.
"""
