"""workers.classify.partitions: rebalance callbacks, commits, lag, client health."""

from __future__ import annotations

import json
import logging

import pytest
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


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _down(health: ClientHealth, n: int) -> None:
    """What both clients report, ``n`` times each, while no broker answers."""
    for _ in range(n):
        health.on_error(KafkaError(KafkaError._TRANSPORT, "Connect to ipv4#... failed"))
        health.on_error(KafkaError(KafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down"))


def test_an_outage_is_one_line_when_it_starts_and_one_when_it_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = _Clock()
    health = ClientHealth(clock)
    owner = PartitionOwner(
        OffsetTracker(),
        ClassifyMetrics(),
        health,
        exactly_once=False,
        flush=lambda deadline: True,
        flush_timeout_s=1.0,
        on_unassign=lambda keys: None,
    )
    caplog.set_level(logging.DEBUG, logger="workers.classify.partitions")
    owner.on_stats(json.dumps({"brokers": {}}))  # at start, nothing is up yet: no verdict
    assert not health.brokers_up
    assert not [r for r in caplog.records if r.levelno >= logging.INFO]
    owner.on_assign(_RecordingConsumer(), [TopicPartition("t", 0)])
    assert health.brokers_up

    _down(health, 100)
    clock.now += 12.5
    owner.on_stats(json.dumps({"brokers": {"b": {"nodeid": 1, "state": "DOWN"}}}))
    assert not health.brokers_up
    owner.on_stats(_stats({0: 0}))  # a broker is UP again
    owner.on_stats(_stats({0: 0}))
    assert health.brokers_up

    shown = [r for r in caplog.records if r.levelno >= logging.INFO]
    assert [r.levelname for r in shown] == ["INFO", "WARNING", "INFO"]  # assigned, down, up
    assert "no broker reachable (1/1 brokers are down)" in shown[1].getMessage()
    assert "nothing is dropped" in shown[1].getMessage()
    assert shown[2].getMessage() == "Kafka brokers reachable again after 12.5 s"
    assert health.fatal is None


def test_a_fatal_error_is_kept_and_other_errors_warn(caplog: pytest.LogCaptureFixture) -> None:
    health = ClientHealth()
    health.on_error(KafkaError(KafkaError._AUTHENTICATION, "SASL authentication failed"))
    assert health.fatal is None
    assert "SASL authentication failed" in caplog.records[-1].getMessage()
    assert caplog.records[-1].levelno == logging.WARNING
    health.on_error(KafkaError(KafkaError._FENCED, "fenced", fatal=True))
    assert health.fatal is not None
    assert caplog.records[-1].levelno == logging.ERROR
