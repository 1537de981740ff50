"""The classify worker's small parts: dead-letter records, client configs, stats, signals,
metrics and the health server."""

from __future__ import annotations

import json
import os
import signal
import socket
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, TopicPartition

from workers.classify.metrics import ClassifyMetrics
from workers.classify.partitions import ClientHealth, PartitionOwner
from workers.core.errors import InvalidEventError, PayloadTooLargeError
from workers.core.settings import Settings
from workers.kafka.clients import consumer_config, parse_stats, producer_config
from workers.kafka.deadletter import (
    DLQ_ATTEMPT,
    DLQ_ERROR_CLASS,
    DLQ_ERROR_FIELD,
    DLQ_SOURCE_OFFSET,
    DLQ_SOURCE_PARTITION,
    DLQ_SOURCE_TOPIC,
    DLQ_WORKER,
    dead_letter_record,
)
from workers.kafka.offsets import OffsetTracker
from workers.process.httpserver import HealthServer
from workers.process.signals import install_stop_signals


def test_dead_letter_record_keeps_original_and_adds_headers() -> None:
    err = InvalidEventError("ProductEvent: required field is missing (at $.title)", field="$.title")
    rec = dead_letter_record(
        err,
        topic="product.created",
        partition=3,
        offset=42,
        key=b"P-1",
        value=b'{"x":1}',
        headers=[("trace", b"abc")],
        worker="classify@h",
        failed_at=datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
    )
    assert (rec.key, rec.value, rec.error_class) == (b"P-1", b'{"x":1}', "InvalidEventError")
    h = dict(rec.headers)
    assert rec.headers[0] == ("trace", b"abc")  # original headers first
    assert h[DLQ_ERROR_CLASS] == b"InvalidEventError"
    assert h[DLQ_ERROR_FIELD] == b"$.title"
    assert h[DLQ_SOURCE_TOPIC] == b"product.created"
    assert h[DLQ_SOURCE_PARTITION] == b"3"
    assert h[DLQ_SOURCE_OFFSET] == b"42"
    assert h[DLQ_ATTEMPT] == b"1"
    assert h[DLQ_WORKER] == b"classify@h"


def test_dead_letter_replay_counts_attempts_and_replaces_old_headers() -> None:
    first = dead_letter_record(
        PayloadTooLargeError("too big"),
        topic="t",
        partition=0,
        offset=1,
        key=None,
        value=b"x",
        headers=None,
        worker="w",
    )
    again = dead_letter_record(
        RuntimeError("model"),
        topic="t",
        partition=0,
        offset=9,
        key=None,
        value=b"x",
        headers=first.headers,
        worker="w",
    )
    names = [n for n, _ in again.headers]
    assert names.count(DLQ_ATTEMPT) == 1
    assert dict(again.headers)[DLQ_ATTEMPT] == b"2"
    assert DLQ_ERROR_FIELD not in names  # not an InvalidEventError this time
    assert dict(again.headers)[DLQ_ERROR_CLASS] == b"RuntimeError"


def test_client_configs() -> None:
    s = Settings()
    c = consumer_config(s, "w1")
    assert c["enable.auto.commit"] is False
    assert c["enable.auto.offset.store"] is False
    assert c["auto.offset.reset"] == "earliest"
    assert c["partition.assignment.strategy"] == "cooperative-sticky"
    assert c["group.id"] == s.classify.group_id
    assert c["queued.max.messages.kbytes"] > 0 and c["fetch.max.bytes"] > 0
    p = producer_config(s, "w1")
    assert p["enable.idempotence"] is True
    assert p["acks"] == "all"
    assert p["message.timeout.ms"] == 0
    assert p["compression.type"] == "lz4"
    assert p["queue.buffering.max.messages"] > s.classify.max_in_flight
    assert "transactional.id" not in p
    t = producer_config(s, "w1", transactional=True)
    assert t["transactional.id"] == f"{s.classify.group_id}-w1"


def test_parse_stats() -> None:
    raw = json.dumps(
        {
            "brokers": {
                "127.0.0.1:9092/1": {"nodeid": 1, "state": "UP"},
                "GroupCoordinator": {"nodeid": -1, "state": "UP"},
            },
            "topics": {
                "product.created": {
                    "partitions": {
                        "0": {"consumer_lag": 12},
                        "1": {"consumer_lag": -1},
                        "-1": {"consumer_lag": 5},
                    }
                }
            },
        }
    )
    stats = parse_stats(raw)
    assert stats.brokers_up == 1
    assert stats.lag == {("product.created", 0): 12}


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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_health_server() -> None:
    ready = {"partitions_assigned": False, "model_loaded": True}
    m = ClassifyMetrics()
    server = HealthServer("127.0.0.1", _free_port(), metrics=m.exposition, readiness=lambda: ready)
    server.start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        with urllib.request.urlopen(f"{base}/healthz", timeout=5) as r:
            assert r.status == 200
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(f"{base}/readyz", timeout=5)
        assert info.value.code == 503
        assert json.loads(info.value.read())["checks"]["partitions_assigned"] is False
        ready["partitions_assigned"] = True
        with urllib.request.urlopen(f"{base}/readyz", timeout=5) as r:
            assert r.status == 200
        with urllib.request.urlopen(f"{base}/metrics", timeout=5) as r:
            assert b"prodcat_in_flight" in r.read()
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(f"{base}/nope", timeout=5)
    finally:
        server.close()


def test_signals_first_drains_second_exits() -> None:
    stops: list[int] = []
    exits: list[int] = []
    restore = install_stop_signals(lambda: stops.append(1), hard_exit=exits.append)
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        assert stops == [1] and exits == []
        os.kill(os.getpid(), signal.SIGINT)
        assert exits == [128 + signal.SIGINT]
    finally:
        restore()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL or callable(
        signal.getsignal(signal.SIGTERM)
    )


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


def test_classify_without_bundle_fails_cleanly(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from workers.cli.main import main

    monkeypatch.delenv("PRODCAT_MODEL_BUNDLE", raising=False)
    monkeypatch.setenv("PRODCAT_MODEL_STORE", str(tmp_path / "no-store"))  # nothing to serve
    previous = signal.getsignal(signal.SIGTERM)
    assert main(["classify", "--metrics-port", "0"]) == 1
    assert "no model bundle" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGTERM) == previous  # handlers restored
