"""Read a topic from its beginning up to its end as it is now: the snapshot of a compacted
topic (labels, the feedback app's quality changelog, decision records).

The reader takes no part in a consumer group and commits nothing. "The end" is each
partition's high watermark when the read starts; progress is judged by the consumer's
*position*, not by the last offset seen, since compaction and transaction markers leave
gaps in the offsets.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

from workers.core.errors import ServiceUnavailableError
from workers.core.settings import KafkaSettings
from workers.kafka.clients import reader_config

__all__ = ["Record", "newest_per_key", "read_topic"]


@dataclass(frozen=True, slots=True)
class Record:
    """One record of a snapshot."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


def read_topic(
    kafka: KafkaSettings,
    topic: str,
    purpose: str,
    *,
    timeout_s: float = 30.0,
    extra: Mapping[str, Any] | None = None,
) -> Iterator[Record]:
    """Every record of ``topic`` from the beginning to its current end, partition by
    partition in offset order. A topic that does not exist yields nothing.

    Raises :class:`ServiceUnavailableError` when Kafka does not answer, or when the end is
    not reached within ``timeout_s``.
    """
    consumer = Consumer(reader_config(kafka, purpose, **dict(extra or {})))
    try:
        try:
            metadata = consumer.list_topics(topic, timeout=timeout_s).topics.get(topic)
        except KafkaException as exc:
            raise ServiceUnavailableError(
                f"Kafka at {kafka.bootstrap} did not answer ({exc}); check PRODCAT_KAFKA_BOOTSTRAP"
            ) from exc
        if metadata is None or metadata.error is not None or not metadata.partitions:
            return
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
                if partition is None or offset is None or partition not in ends:
                    continue
                if offset < ends[partition]:
                    yield Record(partition, offset, message.key(), message.value())
            for tp in consumer.position([TopicPartition(topic, p) for p in ends]):
                if tp.offset >= ends[tp.partition]:
                    del ends[tp.partition]
        if ends:
            raise ServiceUnavailableError(
                f"read topic {topic} for {timeout_s:g} s without reaching its end "
                f"(partitions {sorted(ends)} left); retry with a longer timeout"
            )
    finally:
        consumer.close()


def newest_per_key(records: Iterator[Record]) -> dict[bytes, Record]:
    """What a compacted topic says: the newest record per key, tombstones removing it."""
    out: dict[bytes, Record] = {}
    for record in records:
        if record.key is None:
            continue
        if record.value is None:
            out.pop(record.key, None)
        else:
            out[record.key] = record
    return out
