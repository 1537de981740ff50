"""workers.kafka.clients: the classify worker's client configurations and librdkafka statistics."""

from __future__ import annotations

import json
import logging

import pytest
from confluent_kafka import KafkaError

from workers.core.settings import Settings
from workers.kafka.clients import (
    KAFKA_LOG,
    RECONNECT_BACKOFF_MS,
    admin_config,
    consumer_config,
    log_client_error,
    parse_stats,
    producer_config,
    reader_config,
    writer_config,
)


def test_client_configs() -> None:
    s = Settings()
    c = consumer_config(s, "w1")
    assert c["enable.auto.commit"] is False
    assert c["enable.auto.offset.store"] is False
    assert c["auto.offset.reset"] == "earliest"
    assert c["partition.assignment.strategy"] == "range"  # per topic, co-partitioned
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


def test_every_client_logs_through_python_and_backs_off() -> None:
    s = Settings()
    confs = {
        "consumer": consumer_config(s, "w1"),
        "producer": producer_config(s, "w1"),
        "reader": reader_config(s.kafka, "control-worker"),
        "writer": writer_config(s.kafka, "control-writer"),
        "admin": admin_config(s.kafka),
    }
    for role, conf in confs.items():
        assert conf["logger"] is KAFKA_LOG, role  # never librdkafka's own stderr lines
        assert conf["error_cb"] is log_client_error, role
        assert conf["reconnect.backoff.ms"] == RECONNECT_BACKOFF_MS, role
    mine = producer_config(s, "w1", error_cb=print)
    assert mine["error_cb"] is print  # a caller's own callback wins


def test_client_errors_by_kind(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=KAFKA_LOG.name)
    log_client_error(KafkaError(KafkaError._TRANSPORT, "Connect to ipv4#127.0.0.1:9 failed"))
    log_client_error(KafkaError(KafkaError._AUTHENTICATION, "SASL authentication failed"))
    log_client_error(KafkaError(KafkaError._FENCED, "fenced", fatal=True))
    assert [r.levelno for r in caplog.records] == [logging.DEBUG, logging.WARNING, logging.ERROR]


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
