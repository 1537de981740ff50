"""Every confluent-kafka client configuration prodcat builds, in one place.

Connection and security keys come from :meth:`KafkaSettings.librdkafka`; each builder
adds a ``client.id`` naming the client's role and the keys of its kind:

* :func:`consumer_config` / :func:`producer_config`: the classify worker's. Consumer:
  manual commits of explicit offsets (no auto-commit, no offset store), ``range``
  assignment (:data:`ASSIGNOR`), bounded prefetch. Producer: idempotent, ``acks=all``,
  lz4, 1 ms of linger, bounded queue, and ``message.timeout.ms=0`` so an unreachable
  broker means "keep retrying", never "drop". In exactly-once mode the producer is
  transactional with a ``transactional.id`` that is stable per worker instance, so a
  restarted worker fences its predecessor and aborts its open transaction at once.
* :func:`reader_config`: a consumer that commits nothing (the control topic, the labels
  dump, the demo's watcher, lag probes, benchmarks): its own throwaway group unless told
  which group's offsets it reads.
* :func:`writer_config`: an idempotent ``acks=all`` producer for everything else (control
  records, the demo's and benchmarks' events).
* :func:`admin_config`: admin clients (topic creation, connectivity checks).

Every producer hashes keys with ``murmur2_random``, Java's partitioner
(``schemas/README.md``), so all topics keyed by ``product_id`` stay co-partitioned.

Every client logs through Python logging, never straight to stderr: librdkafka's lines go
to the ``prodcat.kafka`` logger (:data:`KAFKA_LOG`; served when the client is polled), and
client errors to :func:`log_client_error` unless the caller handles them (the classify
worker's :class:`~workers.classify.partitions.ClientHealth` does, and logs one line per
change of broker reachability). A broker that refuses connections is retried every
:data:`RECONNECT_BACKOFF_MS` or so, not every 50 ms; :class:`workers.core.logs.RepeatFilter`
holds back the repeats.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError

from workers.core.settings import KafkaSettings, Settings

__all__ = [
    "ASSIGNOR",
    "KAFKA_LOG",
    "UNREACHABLE_CODES",
    "ClientStats",
    "admin_config",
    "consumer_config",
    "log_client_error",
    "parse_stats",
    "producer_config",
    "producer_queue_limit",
    "reader_config",
    "writer_config",
]

log = logging.getLogger(__name__)

KAFKA_LOG = logging.getLogger("prodcat.kafka")
"""librdkafka's own lines, from every client (the ``logger`` of each configuration)."""

CONSUMER_QUEUE_KBYTES = 32 * 1024
"""librdkafka prefetch queue bound (``queued.max.messages.kbytes``), for all partitions."""
FETCH_MAX_BYTES = 16 * 1024 * 1024
PRODUCER_QUEUE_KBYTES = 128 * 1024
PRODUCER_LINGER_MS = 1
"""The worker produces a batch's outputs in one burst, so waiting longer for more adds
latency and batches nothing: 1 ms instead of 5 took 2-5 ms off p50 and p99 at 9,500
events/s (four interleaved pairs of paced runs) at the same throughput and CPU."""
PRODUCER_MESSAGE_MAX_BYTES = 1_000_000
"""librdkafka's default ``message.max.bytes``."""
LIBRDKAFKA_MESSAGE_MAX_BYTES = 1_000_000_000
"""The highest ``message.max.bytes`` librdkafka accepts."""
SESSION_TIMEOUT_MS = 10_000
STATS_INTERVAL_MS = 2_000
TRANSACTION_TIMEOUT_MS = 30_000
PARTITIONER = "murmur2_random"
"""Java-compatible key hashing, as every prodcat producer (``schemas/README.md``)."""
ASSIGNOR = "range"
"""How the classify group shares the input partitions. ``range`` splits each topic's
partitions evenly (sizes differ by at most one) over the members, taken in the same order
for every topic: partition n of ``product.created`` and of ``product.updated`` (same key,
same partition number: the topics are co-partitioned) go to the same worker, so a product's
created and updated events meet there. ``cooperative-sticky`` balanced only the total
count: with two workers one held all six ``product.created`` partitions. ``range`` is an
eager protocol: a rebalance first revokes every partition, and the worker's revoke callback
flushes and commits them (:meth:`workers.classify.partitions.PartitionOwner.on_revoke`), so
a rebalance loses and repeats nothing. Members with different protocols cannot share a
group: switching assignor means stopping every worker of the old one first (README)."""
RECONNECT_BACKOFF_MS = 1000
"""Wait before reconnecting to a broker that refused or dropped the connection (librdkafka's
default, 100 ms, gave about 20 attempts and as many error lines a second per broker and
client during an outage); a broker that is back is reconnected to within about a second."""
UNREACHABLE_CODES = frozenset(
    {
        KafkaError._TRANSPORT,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError._RESOLVE,
        KafkaError._TIMED_OUT,
    }
)
"""Client errors that mean "a broker does not answer" (retried by the client itself)."""


def log_client_error(err: KafkaError) -> None:
    """The default ``error_cb``: a fatal error as ERROR, a broker that does not answer as
    DEBUG (librdkafka's own line on ``prodcat.kafka`` says so already), others as WARNING."""
    if err.fatal():
        KAFKA_LOG.error("fatal Kafka client error: %s", err)
    elif err.code() in UNREACHABLE_CODES:
        KAFKA_LOG.debug("Kafka: %s", err)
    else:
        KAFKA_LOG.warning("Kafka: %s", err)


def _client(kafka: KafkaSettings, role: str) -> dict[str, Any]:
    """Connection and security keys, a ``client.id`` naming the role, reconnect back-off,
    and logging through Python (librdkafka's lines and client errors)."""
    conf = kafka.librdkafka()
    conf["client.id"] = f"{kafka.client_id}-{role}"
    conf["reconnect.backoff.ms"] = RECONNECT_BACKOFF_MS
    conf["logger"] = KAFKA_LOG
    conf["error_cb"] = log_client_error
    return conf


def _callbacks(conf: dict[str, Any], **callbacks: Any) -> dict[str, Any]:
    """Add the callbacks (and the logger) that are given; librdkafka names them as here."""
    conf.update({name: cb for name, cb in callbacks.items() if cb is not None})
    return conf


def admin_config(kafka: KafkaSettings, role: str = "admin") -> dict[str, Any]:
    """An admin client (topic creation, metadata and reachability checks)."""
    return _client(kafka, role)


def reader_config(
    kafka: KafkaSettings, role: str, *, group_id: str | None = None, **extra: Any
) -> dict[str, Any]:
    """A consumer that commits nothing: it reads from the earliest offset with
    ``assign()`` or ``subscribe()``. Its group is its own (``{client_id}-{role}-<random>``)
    unless ``group_id`` names the group whose committed offsets it reads (a lag probe).
    ``extra`` adds or overrides librdkafka keys (dots as in librdkafka)."""
    conf = _client(kafka, role)
    conf.update(
        {
            "group.id": group_id or f"{kafka.client_id}-{role}-{uuid.uuid4().hex[:12]}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": False,
        }
    )
    conf.update(extra)
    return conf


def writer_config(
    kafka: KafkaSettings, role: str, *, linger_ms: float = 0, **extra: Any
) -> dict[str, Any]:
    """An idempotent ``acks=all`` producer with prodcat's partitioner, for control records
    and the events tools and demos send. ``extra`` adds or overrides librdkafka keys."""
    conf = _client(kafka, role)
    conf.update(
        {
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": linger_ms,
            "partitioner": PARTITIONER,
        }
    )
    conf.update(extra)
    return conf


def producer_queue_limit(settings: Settings) -> int:
    """Room for ``max_in_flight`` unacknowledged outputs plus one more batch (x2 for review
    copies), so the in-flight bound, not a full queue, is what normally stops consumption."""
    c = settings.classify
    return 2 * c.max_in_flight + 2 * c.batch_max + 1000


def consumer_config(
    settings: Settings,
    instance: str,
    *,
    error_cb: Callable[[Any], None] | None = None,
    stats_cb: Callable[[str], None] | None = None,
    on_commit: Callable[[Any, Any], None] | None = None,
    logger: logging.Logger | None = None,
) -> dict[str, Any]:
    """The classify worker's consumer (see the module docstring)."""
    conf = _client(settings.kafka, f"classify-{instance}")
    conf.update(
        {
            "group.id": settings.classify.group_id,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "partition.assignment.strategy": ASSIGNOR,
            "isolation.level": "read_committed",
            "queued.max.messages.kbytes": CONSUMER_QUEUE_KBYTES,
            "fetch.max.bytes": FETCH_MAX_BYTES,
            "max.partition.fetch.bytes": max(settings.classify.max_payload_bytes * 4, 1 << 20),
            "session.timeout.ms": SESSION_TIMEOUT_MS,
            "heartbeat.interval.ms": SESSION_TIMEOUT_MS // 4,
            "statistics.interval.ms": STATS_INTERVAL_MS,
            "enable.partition.eof": False,
        }
    )
    return _callbacks(
        conf, error_cb=error_cb, stats_cb=stats_cb, on_commit=on_commit, logger=logger
    )


def producer_config(
    settings: Settings,
    instance: str,
    *,
    transactional: bool = False,
    error_cb: Callable[[Any], None] | None = None,
    logger: logging.Logger | None = None,
    message_max_bytes: int | None = None,
) -> dict[str, Any]:
    """The classify worker's producer (see the module docstring). ``message_max_bytes``,
    the dead-letter topic's ``max.message.bytes``, raises the producer's own limit to it
    (never below librdkafka's default), so a dead letter as large as the topic takes is
    not refused by the client first."""
    conf = _client(settings.kafka, f"classify-{instance}")
    conf.update(
        {
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": PRODUCER_LINGER_MS,
            "compression.type": "lz4",
            "batch.num.messages": 10_000,
            "batch.size": 1_000_000,
            "queue.buffering.max.messages": producer_queue_limit(settings),
            "queue.buffering.max.kbytes": PRODUCER_QUEUE_KBYTES,
            "message.timeout.ms": 0,
            "partitioner": PARTITIONER,
        }
    )
    if message_max_bytes is not None:
        conf["message.max.bytes"] = min(
            max(message_max_bytes, PRODUCER_MESSAGE_MAX_BYTES), LIBRDKAFKA_MESSAGE_MAX_BYTES
        )
    if transactional:
        conf["transactional.id"] = f"{settings.classify.group_id}-{instance}"
        conf["transaction.timeout.ms"] = TRANSACTION_TIMEOUT_MS
    return _callbacks(conf, error_cb=error_cb, logger=logger)


@dataclass(slots=True)
class ClientStats:
    """What the worker reads from a librdkafka statistics report."""

    brokers_up: int = 0
    # (topic, partition) -> lag behind the high watermark, from the committed offset
    lag: dict[tuple[str, int], int] = field(default_factory=dict)


def parse_stats(raw: str) -> ClientStats:
    """Broker states and per-partition consumer lag from a ``stats_cb`` JSON report."""
    data = json.loads(raw)
    out = ClientStats()
    for broker in data.get("brokers", {}).values():
        if broker.get("nodeid", -1) >= 0 and broker.get("state") == "UP":
            out.brokers_up += 1
    for topic, tdata in data.get("topics", {}).items():
        for pid, pdata in tdata.get("partitions", {}).items():
            partition = int(pid)
            if partition < 0:  # the internal "-1" UA partition
                continue
            lag = pdata.get("consumer_lag", -1)
            if lag is not None and lag >= 0:
                out.lag[(topic, partition)] = int(lag)
    return out
