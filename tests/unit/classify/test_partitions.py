"""workers.classify.partitions: rebalance callbacks, commits, lag, client health."""

from __future__ import annotations

import json

from confluent_kafka import KafkaError, TopicPartition

from workers.classify.metrics import ClassifyMetrics
from workers.classify.partitions import ClientHealth, PartitionOwner
from workers.kafka.offsets import OffsetTracker


class _RecordingConsumer:
    """Stands in for the consumer inside rebalance callbacks: records commits only."""

    def __init__(self) -> None:
        self.commits: list[tuple[list[tuple[str, int, int]], bool]] = []

    def commit(self, offsets: list[TopicPartition], asynchronous: bool) -> None:
        self.commits.append(([(tp.topic, tp.partition, tp.offset) for tp in offsets], asynchronous))


def _stats(lags: dict[int, int]) -> str:
    parts = {str(p): {"consumer_lag": lag} for p, lag in lags.items()}
    return json.dumps(
        {"brokers": {"b": {"nodeid": 1, "state": "UP"}}, "topics": {"t": {"partitions": parts}}}
    )


def test_revoke_flushes_commits_forgets_and_drops_lag() -> None:
    tracker, metrics = OffsetTracker(), ClassifyMetrics()
    flushed: list[float] = []

    def flush(deadline: float) -> bool:
        flushed.append(deadline)
        return True

    unassigned: list[list[tuple[str, int]]] = []
    health = ClientHealth()
    owner = PartitionOwner(
        tracker,
        metrics,
        health,
        exactly_once=False,
        flush=flush,
        flush_timeout_s=1.0,
        on_unassign=unassigned.append,
    )
    consumer = _RecordingConsumer()
    owner.on_assign(consumer, [TopicPartition("t", 0), TopicPartition("t", 1)])
    assert owner.assigned == {("t", 0), ("t", 1)} and health.brokers_up
    tracker.ack(tracker.track("t", 0, 5, outputs=1))
    tracker.track("t", 1, 0, outputs=1)
    owner.on_stats(_stats({0: 3, 1: 4}))
    assert metrics.lag_partitions() == {("t", "0"), ("t", "1")}

    owner.on_revoke(consumer, [TopicPartition("t", 0)])
    assert len(flushed) == 1  # outputs flushed before the commit
    assert consumer.commits == [([("t", 0, 6)], False)]  # synchronous, revoked only
    assert tracker.partitions() == [("t", 1)]
    assert owner.assigned == {("t", 1)}
    assert unassigned == [[("t", 0)]]
    assert metrics.lag_partitions() == {("t", "1")}
    owner.on_stats(_stats({0: 9, 1: 2}))  # a stale report still listing t[0]
    assert metrics.lag_partitions() == {("t", "1")}

    owner.on_lost(consumer, [TopicPartition("t", 1)])
    assert consumer.commits == [([("t", 0, 6)], False)]  # lost: nothing committed
    assert tracker.partitions() == [] and owner.assigned == set()


def test_periodic_commit_is_async_and_failed_commit_is_retried() -> None:
    tracker, metrics = OffsetTracker(), ClassifyMetrics()
    owner = PartitionOwner(
        tracker,
        metrics,
        ClientHealth(),
        exactly_once=False,
        flush=lambda deadline: True,
        flush_timeout_s=1.0,
        on_unassign=lambda keys: None,
    )
    consumer = _RecordingConsumer()
    tracker.ack(tracker.track("t", 0, 0, outputs=1))
    owner.commit(consumer, asynchronous=True)
    owner.commit(consumer, asynchronous=True)  # nothing new: no second commit
    assert consumer.commits == [([("t", 0, 1)], True)]
    failed = TopicPartition("t", 0, 1)
    owner.on_commit(KafkaError(KafkaError.REQUEST_TIMED_OUT), [failed])
    owner.commit(consumer, asynchronous=True)
    assert consumer.commits[-1] == ([("t", 0, 1)], True)
