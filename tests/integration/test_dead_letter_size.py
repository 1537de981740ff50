"""Dead letters keep their bytes: an input topic that allows 8 MB messages gets a 2 MB event
(a real catalog row, its description repeated), which the worker dead-letters as too large
to classify. The dead-letter topic the worker creates takes it whole; an existing one that
takes less is reported at start, and the dead letter then says its value was dropped and
where the original is. Before: the dead letter went out with value=None and nothing said so.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._config import ConfigResource
from confluent_kafka.admin._resource import ResourceType

from export.data.catalog import Example
from tests.integration.classify_support import (
    CODEC,
    PARTITIONS,
    Setup,
    categorized,
    read_all,
    running_worker,
    text_of,
)
from workers.core.events import product_event
from workers.kafka.deadletter import (
    DLQ_ERROR_CLASS,
    DLQ_SOURCE_OFFSET,
    DLQ_SOURCE_PARTITION,
    DLQ_SOURCE_TOPIC,
    DLQ_VALUE_DROPPED,
)
from workers.kafka.sandbox import TopicSandbox
from workers.kafka.topics import DEAD_LETTER_HEADROOM_BYTES

pytestmark = [pytest.mark.integration]

EIGHT_MB = 8 * 1024 * 1024
BIG_BYTES = 2 * 1024 * 1024


def _setup(
    factory: TopicSandbox, bootstrap: str, redis_url: str, bundle: Path, *, dead_letter: bool
) -> Setup:
    big = {"max.message.bytes": str(EIGHT_MB)}
    names = {
        "product_created": factory.new(PARTITIONS, name="product_created", config=big),
        "product_updated": factory.new(PARTITIONS, name="product_updated", config=big),
        "categorized": factory.new(PARTITIONS, name="categorized"),
        "review": factory.new(PARTITIONS, name="review"),
        "models": factory.new(1, name="models"),
    }
    if dead_letter:  # as the broker makes it: its default max.message.bytes (about 1 MB)
        names["dead_letter"] = factory.new(PARTITIONS, name="dead_letter")
    else:  # the worker creates it
        names["dead_letter"] = factory.adopt(f"{factory.prefix}.dead_letter.{uuid.uuid4().hex}")
    return Setup(bootstrap, redis_url, bundle, names)


def _big_and_small(rows: list[Example]) -> tuple[bytes, bytes]:
    """A real row with its description repeated to 2 MB, and another real row as is."""
    now = datetime.now(UTC)
    row, other = rows[0], rows[1]
    text = text_of(row)
    unit = (text.description or text.title) + " "
    inflated = text._replace(description=unit * (BIG_BYTES // len(unit.encode()) + 1))
    big = product_event(inflated, product_id=row.product_id, event_id="big", occurred_at=now)
    small = product_event(other, product_id=other.product_id, event_id="small", occurred_at=now)
    return CODEC.encode(big), CODEC.encode(small)


def _produce(bootstrap: str, topic: str, values: Iterable[bytes]) -> None:
    p = Producer({"bootstrap.servers": bootstrap, "message.max.bytes": EIGHT_MB})
    for i, value in enumerate(values):
        p.produce(topic, value, f"key-{i}".encode())
    assert p.flush(30) == 0


def _limit(admin: AdminClient, topic: str) -> int:
    resource = ConfigResource(ResourceType.TOPIC, topic)
    entries = admin.describe_configs([resource])[resource].result(timeout=10)
    return int(entries["max.message.bytes"].value)


@pytest.mark.parametrize("existing", [False, True], ids=["created", "existing-1MB"])
def test_a_2mb_event_is_dead_lettered_with_its_bytes_or_says_where_they_are(
    topic_factory: TopicSandbox,
    kafka_bootstrap: str,
    kafka_admin: AdminClient,
    redis_url: str,
    classify_bundle: Path,
    catalog_rows: list[Example],
    caplog: pytest.LogCaptureFixture,
    existing: bool,
) -> None:
    s = _setup(topic_factory, kafka_bootstrap, redis_url, classify_bundle, dead_letter=existing)
    big, small = _big_and_small(catalog_rows)
    assert BIG_BYTES <= len(big) < EIGHT_MB
    caplog.set_level(logging.WARNING, logger="workers")
    with running_worker(s.settings()):
        _produce(kafka_bootstrap, s.topics["product_created"], [big, small])
        [dead] = read_all(kafka_bootstrap, s.topics["dead_letter"], expect=1)
        [done] = categorized(read_all(kafka_bootstrap, s.topics["categorized"], expect=1))
    assert done.causation_id == "small"  # the worker carried on
    headers = dict(dead.headers())
    assert headers[DLQ_ERROR_CLASS] == b"PayloadTooLargeError"
    where = (dead.key(), headers[DLQ_SOURCE_TOPIC], headers[DLQ_SOURCE_OFFSET])
    assert where == (b"key-0", s.topics["product_created"].encode(), b"0")
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    if not existing:
        assert _limit(kafka_admin, s.topics["dead_letter"]) == EIGHT_MB + DEAD_LETTER_HEADROOM_BYTES
        assert dead.value() == big  # every byte, ready to replay
        assert DLQ_VALUE_DROPPED not in headers
        assert not [w for w in warnings if "dead-letter topic" in w]
    else:
        assert dead.value() is None
        partition = headers[DLQ_SOURCE_PARTITION].decode()
        note = headers[DLQ_VALUE_DROPPED].decode()
        assert note.startswith(f"{len(big)} bytes: over the dead-letter topic's limit")
        assert f"the original is at {s.topics['product_created']}[{partition}]@0" in note
        [start] = [w for w in warnings if "takes messages of up to" in w]
        assert f"{s.topics['product_created']} takes up to {EIGHT_MB}" in start
        assert "kafka-configs.sh" in start
