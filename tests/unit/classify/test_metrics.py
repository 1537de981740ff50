"""workers.classify.metrics: names, and lag series that leave with their partitions."""

from __future__ import annotations

from workers.classify.metrics import ClassifyMetrics


def test_lag_labels_removed_on_revoke() -> None:
    m = ClassifyMetrics()
    m.set_lag("t", 0, 5)
    m.set_lag("t", 1, 7)
    m.forget_partitions([("t", 0), ("t", 9)])
    text = m.exposition().decode()
    assert 'prodcat_consumer_lag{partition="1",topic="t"} 7.0' in text
    assert 'partition="0"' not in text
    assert m.lag_partitions() == {("t", "1")}


def test_metric_names_are_prefixed() -> None:
    m = ClassifyMetrics()
    m.topic("x").consumed.inc()
    for family in m.registry.collect():
        assert family.name.startswith("prodcat_"), family.name
