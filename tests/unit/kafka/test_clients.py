"""workers.kafka.clients: the classify worker's client configurations and librdkafka statistics."""

from __future__ import annotations

import json

from workers.core.settings import Settings
from workers.kafka.clients import consumer_config, parse_stats, producer_config


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
