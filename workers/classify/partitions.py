"""Which input partitions a classify worker owns, and committing their offsets.

:class:`ClientHealth` takes the error callback of both Kafka clients: whether a broker
answers, and the fatal error that stops the worker. :class:`PartitionOwner` holds the
consumer's rebalance, commit and statistics callbacks. Both exist before the clients (the
clients' configurations name their callbacks), and neither holds a client: the consumer
is an argument of :meth:`PartitionOwner.commit`. With ``range`` assignment
(:data:`workers.kafka.clients.ASSIGNOR`) a rebalance revokes every partition, then assigns
the new share:

* on assign, they join :attr:`PartitionOwner.assigned`;
* on revoke (at-least-once mode), every produced output is flushed first, then the
  committable offsets of the revoked partitions are committed synchronously, then
  the tracker forgets them and their lag series is removed;
* on lost (the group moved on without us), they are forgotten without committing:
  the new owner reprocesses from the last commit.

:meth:`PartitionOwner.commit` commits the tracker's committable offsets (periodically
and asynchronously from the loop; synchronously on revoke and on stop). An async
commit that fails puts its offsets back up for the next commit.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from workers.classify.metrics import ClassifyMetrics
from workers.core.logs import flush_repeats
from workers.kafka.clients import UNREACHABLE_CODES, parse_stats
from workers.kafka.offsets import OffsetTracker, TopicPartitionKey

__all__ = ["ClientHealth", "PartitionOwner", "fmt_partitions"]

log = logging.getLogger(__name__)


def fmt_partitions(keys: list[TopicPartitionKey]) -> str:
    return ", ".join(f"{t}[{p}]" for t, p in sorted(keys)) or "nothing"


class ClientHealth:
    """The ``error_cb`` of the worker's consumer and producer: whether a broker answers
    (also told by assignments and statistics, :meth:`reachable`), logged once per change,
    and the fatal error, if one happened.

    During an outage each client reports every failed connection attempt; those are
    DEBUG lines here (librdkafka's own lines on ``prodcat.kafka`` pass the repeat filter
    once), and the two lines that matter are "no broker reachable" and "reachable again
    after N s"."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._up: bool | None = None  # None: no sign either way yet
        self._down_since = 0.0
        self.fatal: BaseException | None = None

    @property
    def brokers_up(self) -> bool:
        return self._up is True

    def on_error(self, err: KafkaError) -> None:
        if err.fatal():
            log.error("fatal Kafka client error: %s", err)
            self.fatal = KafkaException(err)
        elif err.code() == KafkaError._ALL_BROKERS_DOWN:
            self.reachable(False, err.str())
        elif err.code() in UNREACHABLE_CODES:
            log.debug("Kafka: %s", err)
        else:
            log.warning("Kafka: %s", err)

    def reachable(self, up: bool, detail: str = "") -> None:
        """Record whether a broker answers; log a line when that changes."""
        was = self._up
        if up == was:
            return
        self._up = up
        now = self._clock()
        if up:
            if was is False:
                flush_repeats()  # how often the clients retried, before the recovery line
                log.info("Kafka brokers reachable again after %.1f s", now - self._down_since)
            return
        self._down_since = now
        log.warning(
            "Kafka: no broker reachable (%s); the clients keep retrying. Consumption waits, "
            "produced outputs stay queued and are delivered once a broker answers; nothing "
            "is dropped, and nothing is committed meanwhile",
            detail,
        )


class PartitionOwner:
    """Rebalance, commit and statistics callbacks of the worker's consumer."""

    def __init__(
        self,
        tracker: OffsetTracker,
        metrics: ClassifyMetrics,
        health: ClientHealth,
        *,
        exactly_once: bool,
        flush: Callable[[float], bool],
        flush_timeout_s: float,
        on_unassign: Callable[[list[TopicPartitionKey]], None],
    ) -> None:
        self.tracker = tracker
        self.metrics = metrics
        self.health = health
        self.exactly_once = exactly_once
        self._flush = flush
        self._flush_timeout_s = flush_timeout_s
        self._on_unassign = on_unassign
        self.assigned: set[TopicPartitionKey] = set()

    # ------------------------------------------------------------------ rebalance callbacks

    def on_assign(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        keys = [(p.topic, p.partition) for p in partitions]
        self.metrics.rebalances.labels("assign").inc()
        self.assigned.update(keys)
        self.health.reachable(True)
        self.metrics.assigned_partitions.set(len(self.assigned))
        log.info("assigned %s", fmt_partitions(keys))

    def on_revoke(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        keys = [(p.topic, p.partition) for p in partitions]
        self.metrics.rebalances.labels("revoke").inc()
        if not self.exactly_once:
            self._flush(time.monotonic() + self._flush_timeout_s)
            self.commit(consumer, asynchronous=False, only=keys)
            self.tracker.forget(keys)
        self._unassign(keys)
        log.info("revoked %s", fmt_partitions(keys))

    def on_lost(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        keys = [(p.topic, p.partition) for p in partitions]
        self.metrics.rebalances.labels("lost").inc()
        self.tracker.forget(keys)
        self._unassign(keys)
        log.warning("lost %s (not committing; the new owner reprocesses)", fmt_partitions(keys))

    def _unassign(self, keys: list[TopicPartitionKey]) -> None:
        self._on_unassign(keys)
        self.assigned.difference_update(keys)
        self.metrics.forget_partitions(keys)
        self.metrics.assigned_partitions.set(len(self.assigned))

    # ------------------------------------------------------------------ client callbacks

    def on_stats(self, raw: str) -> None:
        try:
            stats = parse_stats(raw)
        except (ValueError, KeyError, TypeError):
            return
        if stats.brokers_up > 0:
            self.health.reachable(True)
        elif self.health.brokers_up:  # at start, no connection yet means nothing
            self.health.reachable(False, "no broker connection is up")
        for (topic, partition), lag in stats.lag.items():
            if (topic, partition) in self.assigned:
                self.metrics.set_lag(topic, partition, lag)

    def on_commit(self, err: Any, partitions: list[TopicPartition]) -> None:
        failed = [(p.topic, p.partition) for p in partitions if p.error is not None]
        if err is not None or failed:
            self.metrics.commits.labels("error").inc()
            keys = failed or [(p.topic, p.partition) for p in partitions]
            self.tracker.reset_committed(keys)
            log.warning("offset commit failed for %s: %s", keys, err)

    # ------------------------------------------------------------------ commits

    def commit(
        self, consumer: Any, *, asynchronous: bool, only: list[TopicPartitionKey] | None = None
    ) -> None:
        """Commit the committable offsets (of ``only`` if given) with ``consumer``. A
        synchronous commit also repeats offsets already sent asynchronously: those may still
        be in flight."""
        if self.exactly_once:
            return
        force = not asynchronous
        tracker = self.tracker
        offsets = (
            tracker.committable(force=force)
            if only is None
            else tracker.committable_for(only, force=force)
        )
        if not offsets:
            return
        tps = [TopicPartition(t, p, o) for (t, p), o in offsets.items()]
        try:
            consumer.commit(offsets=tps, asynchronous=asynchronous)
        except KafkaException as exc:
            self.metrics.commits.labels("error").inc()
            log.warning("offset commit of %s failed: %s", fmt_partitions(list(offsets)), exc)
            return
        tracker.mark_committed(offsets)
        self.metrics.commits.labels("async" if asynchronous else "sync").inc()
