"""Delivery reports are counted into Prometheus in bulk: the exposition is the one that
per-report ``inc``/``observe`` calls give, and nothing stays unpublished once every output
is acknowledged."""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Histogram, generate_latest

from workers.classify.batch import Outcome
from workers.classify.delivery import METRICS_BATCH, OutputSender, observe_all
from workers.classify.metrics import ClassifyMetrics
from workers.core.settings import TopicSettings
from workers.kafka.offsets import OffsetTracker

BUCKETS = (0.001, 0.01, 0.1, 1.0, 10.0)


def _histogram() -> tuple[CollectorRegistry, Histogram]:
    registry = CollectorRegistry()
    return registry, Histogram("lat_seconds", "latency", buckets=BUCKETS, registry=registry)


def _samples(registry: CollectorRegistry) -> list[str]:
    return [
        line
        for line in generate_latest(registry).decode().splitlines()
        if not line.startswith("#") and "_created" not in line
    ]


def test_observe_all_equals_one_observe_per_value() -> None:
    # bounds exactly, just above and below them, zero, beyond the last bound
    values = [0.0, 0.001, 0.0010001, 0.0099, 0.01, 0.5, 1.0, 9.99, 10.0, 10.01, 1e6, 0.05] * 3
    one, h_one = _histogram()
    bulk, h_bulk = _histogram()
    for v in values:
        h_one.observe(v)
    observe_all(h_bulk, values)
    assert _samples(one) == _samples(bulk)
    assert 'lat_seconds_bucket{le="+Inf"} 36.0' in _samples(bulk)
    observe_all(h_bulk, [])
    assert _samples(one) == _samples(bulk)


class FakeMessage:
    def __init__(self, partition: int, offset: int) -> None:
        self._p, self._o = partition, offset

    def topic(self) -> str:
        return "in"

    def partition(self) -> int:
        return self._p

    def offset(self) -> int:
        return self._o


class FakeProducer:
    """Keeps each produce call's delivery callback; the test acknowledges them."""

    def __init__(self) -> None:
        self.callbacks: list[tuple[str, Any]] = []

    def produce(self, topic: str, value: bytes, key: bytes, on_delivery: Any = None) -> None:
        self.callbacks.append((topic, on_delivery))

    def ack_all(self) -> None:
        callbacks, self.callbacks = self.callbacks, []
        for topic, callback in callbacks:
            callback(None, topic)

    def __len__(self) -> int:
        return len(self.callbacks)


def _value(metrics: ClassifyMetrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def test_sender_publishes_counts_and_latencies_when_nothing_is_in_flight() -> None:
    metrics = ClassifyMetrics()
    tracker = OffsetTracker()
    producer = FakeProducer()
    topics = TopicSettings(categorized="out", review="rev")
    sender = OutputSender(producer, topics, metrics, tracker, "w")
    n = METRICS_BATCH + 300  # one bulk publish on the way, the rest when all are acked
    occurred = int(time.time() * 1000) - 2000  # two seconds ago
    outcomes = [
        Outcome(key=b"k", value=b"v", review=b"r" if i % 3 == 0 else None, occurred_ms=occurred)
        for i in range(n)
    ]
    sender.send([FakeMessage(i % 2, i // 2) for i in range(n)], outcomes, track=True)
    assert tracker.in_flight == n + (n + 2) // 3
    assert _value(metrics, "prodcat_produced_total", topic="out") == 0
    producer.ack_all()
    assert tracker.in_flight == 0
    assert _value(metrics, "prodcat_produced_total", topic="out") == n
    assert _value(metrics, "prodcat_produced_total", topic="rev") == (n + 2) // 3
    count = _value(metrics, "prodcat_end_to_end_latency_seconds_count")
    assert count == n
    mean = _value(metrics, "prodcat_end_to_end_latency_seconds_sum") / count
    assert 1.9 < mean < 30.0
    below_one_s = _value(metrics, "prodcat_end_to_end_latency_seconds_bucket", le="1.0")
    assert below_one_s == 0


def test_untracked_sends_publish_when_a_partition_run_completes() -> None:
    metrics = ClassifyMetrics()
    producer = FakeProducer()
    sender = OutputSender(producer, TopicSettings(categorized="out"), metrics, OffsetTracker(), "w")
    outcomes = [Outcome(key=b"k", value=b"v", occurred_ms=int(time.time() * 1000))] * 4
    sender.send([FakeMessage(i % 2, i) for i in range(4)], outcomes, track=False)
    callbacks = [cb for _, cb in producer.callbacks]
    callbacks[0](None, "out")  # partition 0: 1 of 2 outputs
    assert _value(metrics, "prodcat_produced_total", topic="out") == 0
    callbacks[2](None, "out")  # partition 0 complete
    assert _value(metrics, "prodcat_produced_total", topic="out") == 2
    assert _value(metrics, "prodcat_end_to_end_latency_seconds_count") == 2


def test_a_partition_run_is_committable_only_when_all_its_outputs_are_acked() -> None:
    """One callback per partition run: partition 1's offsets advance as soon as its own
    outputs are in, partition 0's only when its last output (a review copy) is."""
    tracker = OffsetTracker()
    producer = FakeProducer()
    sender = OutputSender(
        producer, TopicSettings(categorized="out", review="rev"), ClassifyMetrics(), tracker, "w"
    )
    messages = [FakeMessage(0, 10), FakeMessage(1, 7), FakeMessage(0, 11), FakeMessage(1, 8)]
    outcomes = [
        Outcome(key=b"a", value=b"v", occurred_ms=1),
        Outcome(key=b"b", value=b"v", occurred_ms=1),
        Outcome(key=b"c", value=b"v", review=b"r", occurred_ms=1),
        Outcome(key=b"d", value=b"v", occurred_ms=1),
    ]
    sender.send(messages, outcomes, track=True)
    assert tracker.in_flight == 5
    by_topic = [(t, cb) for t, cb in producer.callbacks]
    assert len({id(cb) for _, cb in by_topic}) == 2  # one callback object per partition
    partitions = [0, 1, 0, 0, 1]  # of each produce call, in order
    p0 = [cb for (_, cb), p in zip(by_topic, partitions, strict=True) if p == 0]
    p1 = [cb for (_, cb), p in zip(by_topic, partitions, strict=True) if p == 1]
    for cb in p1:
        cb(None, "out")
    p0[0](None, "out")
    p0[1](None, "out")
    assert tracker.committable() == {("in", 1): 9}
    p0[2](None, "rev")
    assert tracker.committable() == {("in", 0): 12, ("in", 1): 9}
    assert tracker.in_flight == 0
