"""``prodcat labels dump``: the ``category.labels`` topic as a JSON Lines training file.

The labels topic is compacted and keyed by ``product_id``, so reading it from the start to
the current end gives the newest label of every corrected product (older ones may still be
there until compaction runs; the dump keeps only the newest per product, by
``label_time``). Each line is a ``category.label`` event, which ``prodcat train --labels
FILE`` reads as a catalog row (``product_id``, ``title``, ``description``, ``brand``,
``attributes``, ``category_path``, ``label_time``); newer labels win over older catalog
labels of the same product (``export.training.prepare.merge_labels``).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import IO

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

from workers.core.codec import Codec
from workers.core.errors import InvalidEventError, ServiceUnavailableError
from workers.core.events import LabelEvent
from workers.core.settings import Settings
from workers.kafka.clients import reader_config

__all__ = ["dump_labels", "read_labels"]

log = logging.getLogger(__name__)


def read_labels(settings: Settings, *, timeout_s: float = 30.0) -> list[LabelEvent]:
    """The newest label per product on the labels topic, up to its current end."""
    topic = settings.topics.labels
    consumer = Consumer(
        reader_config(settings.kafka, "labels-dump", **{"isolation.level": "read_committed"})
    )
    codec = Codec(1 << 20)
    newest: dict[str, LabelEvent] = {}
    try:
        try:
            metadata = consumer.list_topics(topic, timeout=timeout_s).topics.get(topic)
        except KafkaException as exc:
            raise ServiceUnavailableError(
                f"Kafka at {settings.kafka.bootstrap} did not answer ({exc}); check "
                "PRODCAT_KAFKA_BOOTSTRAP"
            ) from exc
        if metadata is None or metadata.error is not None or not metadata.partitions:
            log.warning("labels topic %s does not exist (yet): nothing to dump", topic)
            return []
        ends: dict[int, int] = {}
        for p in metadata.partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s)
            if high > low:
                ends[p] = high
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
        deadline = time.monotonic() + timeout_s
        while ends and time.monotonic() < deadline:
            for message in consumer.consume(1000, 0.5):
                if message.error() is not None:
                    continue
                partition, offset = message.partition(), message.offset()
                if message.value() is None:
                    continue
                try:
                    label = codec.decode(message.value(), LabelEvent)
                except InvalidEventError as exc:
                    log.warning(
                        "skipping unreadable label at %s[%d]@%d: %s", topic, partition, offset, exc
                    )
                    continue
                old = newest.get(label.product_id)
                if old is None or label.label_time >= old.label_time:
                    newest[label.product_id] = label
            # Positions, not the last offset seen: compaction and transaction markers leave gaps.
            positions = consumer.position([TopicPartition(topic, p) for p in ends])
            for tp in positions:
                if tp.offset >= ends[tp.partition]:
                    del ends[tp.partition]
        if ends:
            raise ServiceUnavailableError(
                f"read the labels topic {topic} for {timeout_s:g} s without reaching its end "
                f"(partitions {sorted(ends)} left); retry with a longer --timeout"
            )
    finally:
        consumer.close()
    return sorted(newest.values(), key=lambda e: (e.label_time, e.product_id))


def dump_labels(settings: Settings, out: IO[bytes] | Path, *, timeout_s: float = 30.0) -> int:
    """Write the newest label per product as JSON Lines; returns the number of rows."""
    labels = read_labels(settings, timeout_s=timeout_s)
    codec = Codec(1 << 20)
    data = b"".join(codec.encode(label) + b"\n" for label in labels)
    if isinstance(out, Path):
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(data)
    else:
        out.write(data)
    return len(labels)
