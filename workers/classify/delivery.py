"""Producing a batch's outputs and handling their delivery reports.

For each consumed message, :meth:`OutputSender.send` produces its categorized
event (keyed by ``product_id``) and review copy, or its dead-letter record. The
messages of one partition in a batch share one delivery callback, a :class:`_Run`,
and one :class:`~workers.kafka.offsets.Pending` in the :class:`~workers.kafka.offsets.OffsetTracker`
(at-least-once mode) covering all their outputs: the run's offsets become committable
together when the broker has acknowledged every one of them, and only then are they
counted, with each input's end-to-end latency from its ``occurred_at`` to that moment.

A full local producer queue (``BufferError``) is backpressure, not an error: the
sender serves delivery reports until there is room. A refused output (which, with
``message.timeout.ms=0``, means a permanent error) is logged with the input's
coordinates and, in at-least-once mode, recorded in :attr:`OutputSender.fatal`:
the input's offset is never committed and the worker stops, so a restart
reprocesses it. One exception: a dead letter too big for the dead-letter topic (larger
than its ``max.message.bytes``, which the sender knows from the start, or refused by the
producer or the broker as too large) is sent again without its value, with a
``prodcat-value-dropped`` header saying where the original is
(:func:`workers.kafka.deadletter.without_value`); resending happens in :meth:`poll` and
:meth:`flush`, never inside a delivery callback.
"""

from __future__ import annotations

import logging
import time
from bisect import bisect_left
from collections.abc import Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from prometheus_client import Counter, Histogram

from workers.classify.batch import Outcome
from workers.classify.metrics import ClassifyMetrics
from workers.core.settings import TopicSettings
from workers.kafka.deadletter import (
    DLQ_VALUE_DROPPED,
    DeadLetter,
    dead_letter_record,
    log_dead_letter,
    without_value,
)
from workers.kafka.offsets import OffsetTracker, Pending

__all__ = ["OutputSender"]

log = logging.getLogger(__name__)

FLUSH_SLICE_S = 0.1
BACKPRESSURE_POLL_S = 0.05
TOO_LARGE = frozenset({KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.RECORD_LIST_TOO_LARGE})
METRICS_BATCH = 512
"""Delivery reports buffered before their metrics are published (see
:meth:`OutputSender.publish_metrics`)."""


def observe_all(histogram: Histogram, values: Sequence[float]) -> None:
    """``histogram.observe(v)`` for every ``v``, with one increment per touched bucket.

    Uses the bucket counters of prometheus_client's ``Histogram`` (``_upper_bounds``,
    ``_buckets``, ``_sum``: unchanged since 0.4); with a client that lacks them it falls
    back to one ``observe`` per value. ``tests/unit/classify/test_delivery.py`` checks that
    both give the same exposition."""
    bounds = getattr(histogram, "_upper_bounds", None)
    buckets = getattr(histogram, "_buckets", None)
    total = getattr(histogram, "_sum", None)
    if bounds is None or buckets is None or total is None or not values:
        for v in values:
            histogram.observe(v)
        return
    counts: dict[int, int] = {}
    for v in values:
        i = bisect_left(bounds, v)  # the first bound >= v, as observe() picks
        counts[i] = counts.get(i, 0) + 1
    total.inc(sum(values))
    for i, n in counts.items():
        buckets[i].inc(n)


class OutputSender:
    """Produces outcomes; owns the delivery callbacks of one producer."""

    def __init__(
        self,
        producer: Any,
        topics: TopicSettings,
        metrics: ClassifyMetrics,
        tracker: OffsetTracker,
        worker_name: str,
        *,
        exactly_once: bool = False,
        dead_letter_max_bytes: int | None = None,
    ) -> None:
        self.producer = producer
        self.topics = topics
        self.metrics = metrics
        self.tracker = tracker
        self.worker_name = worker_name
        self.exactly_once = exactly_once
        self.dead_letter_max_bytes = dead_letter_max_bytes
        self.fatal: BaseException | None = None
        self._resend: list[_DeadLetterDelivery] = []  # dead letters to send without value
        self._categorized_produced = metrics.topic(topics.categorized).produced
        self._end_to_end = metrics.end_to_end_seconds
        self._latencies: list[float] = []  # end-to-end seconds of acks not yet published
        self._counts: dict[Counter, int] = {}  # review and dead-letter acks not yet published

    def send(self, messages: Sequence[Any], outcomes: Sequence[Outcome], *, track: bool) -> None:
        """Produce the outputs of ``messages`` (consumed, in order) from their ``outcomes``.

        The messages of one partition in this batch form a :class:`_Run`: with ``track``,
        one tracker entry (its last offset, all its outputs) and, either way, the one
        delivery callback of all its outputs. So a delivery report costs a counter
        decrement, not a ``partial`` and a tracker entry per message, and the run's offsets
        become committable together once the broker acknowledged all of its outputs."""
        self.publish_metrics()
        categorized, review = self.topics.categorized, self.topics.review
        runs: dict[tuple[str, int], _Run] = {}
        owner: list[_Run] = []
        for m, o in zip(messages, outcomes, strict=True):
            key = (m.topic(), m.partition())
            run = runs.get(key)
            if run is None:
                run = runs[key] = _Run(self, key, m.offset())
            run.last = m.offset()
            run.members.append(m)
            if o.error is not None:
                run.dead += 1
            else:
                run.occurred.append(o.occurred_ms)
                if o.review is not None:
                    run.reviews += 1
            owner.append(run)
        tracker_track = self.tracker.track if track else None
        for run in runs.values():
            run.remaining = len(run.occurred) + run.reviews + run.dead
            if tracker_track is not None:
                run.pending = tracker_track(*run.key, run.last, run.remaining, first=run.first)
        produce = self.producer.produce
        sources: dict[str, int] = {}
        reviews = 0
        for m, o, run in zip(messages, outcomes, owner, strict=True):
            if o.error is not None:
                self.dead_letter(m, o.error, run)
                continue
            sources[o.source] = sources.get(o.source, 0) + 1
            try:
                produce(categorized, o.value, o.key, on_delivery=run)
            except BufferError:
                self._produce(categorized, o.key, o.value, run)
            if o.review is not None:
                reviews += 1
                try:
                    produce(review, o.review, o.key, on_delivery=run)
                except BufferError:
                    self._produce(review, o.key, o.review, run)
        for source, n in sources.items():
            self.metrics.categorized.labels(source).inc(n)
        if reviews:
            self.metrics.reviewed.labels(review).inc(reviews)

    def dead_letter(self, m: Any, error: BaseException, run: _Run) -> None:
        """Produce ``m`` unchanged to the dead-letter topic with the error headers (without
        its value if the record would be larger than the topic takes)."""
        topic, partition, offset = m.topic(), m.partition(), m.offset()
        record = dead_letter_record(
            error,
            topic=topic,
            partition=partition,
            offset=offset,
            key=m.key(),
            value=m.value(),
            headers=m.headers(),
            worker=self.worker_name,
            max_bytes=self.dead_letter_max_bytes,
        )
        log_dead_letter(error, topic, partition, offset)
        self.metrics.dead_lettered.labels(topic, record.error_class).inc()
        if record.value_dropped:
            _log_value_dropped(record, m.value())
        callback: _Run | _DeadLetterDelivery = run
        if not self.exactly_once:  # (a transaction that fails is retried whole instead)
            callback = _DeadLetterDelivery(self, run, record)
        try:
            self._produce(
                self.topics.dead_letter, record.key, record.value, callback, record.headers
            )
        except KafkaException as exc:  # refused at once, e.g. over the producer's limit
            if record.value is None:
                raise
            record = without_value(record, f"the producer refused it ({exc.args[0]})")
            _log_value_dropped(record, m.value())
            if isinstance(callback, _DeadLetterDelivery):
                callback.record = record
            self._produce(self.topics.dead_letter, record.key, None, callback, record.headers)

    def poll(self, timeout_s: float) -> None:
        """Serve delivery reports (up to ``timeout_s``), then send again what they asked
        for (dead letters without their value)."""
        self.producer.poll(timeout_s)
        if self._resend:
            self._send_again()

    def flush(self, deadline: float) -> bool:
        """Serve delivery reports until the producer queue is empty or ``deadline``
        (``time.monotonic()``), in short slices so signals are handled meanwhile."""
        producer = self.producer
        while len(producer) > 0 or self._resend:
            if self._resend:
                self._send_again()
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            producer.flush(min(FLUSH_SLICE_S, left))
        producer.poll(0)
        self.publish_metrics()
        return True

    def _too_large(self, delivery: _DeadLetterDelivery, err: Any) -> None:
        """The broker refused ``delivery``'s dead letter as too large: send it again
        without its value (from :meth:`poll` or :meth:`flush`, not from this callback)."""
        value = delivery.record.value
        delivery.record = without_value(
            delivery.record, f"the broker refused it as too large ({err.name()})"
        )
        _log_value_dropped(delivery.record, value)
        self._resend.append(delivery)

    def _send_again(self) -> None:
        pending, self._resend = self._resend, []
        for delivery in pending:
            record = delivery.record
            self._produce(self.topics.dead_letter, record.key, None, delivery, record.headers)

    def _produce(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        callback: _Run | _DeadLetterDelivery,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        producer = self.producer
        while True:
            try:
                producer.produce(topic, value, key, headers=headers, on_delivery=callback)
                return
            except BufferError:
                producer.poll(BACKPRESSURE_POLL_S)  # local queue full: wait for acks

    # ------------------------------------------------------------------ delivery reports

    def _completed(self, run: _Run) -> None:
        """Every output of ``run`` was acknowledged: count them, and the end-to-end latency
        of each of its inputs (to this moment, when its last output was acknowledged)."""
        counts = self._counts
        if run.reviews:
            review = self.metrics.topic(self.topics.review).produced
            counts[review] = counts.get(review, 0) + run.reviews
        if run.dead:
            dead = self.metrics.topic(self.topics.dead_letter).produced
            counts[dead] = counts.get(dead, 0) + run.dead
        if run.occurred:
            now_ms = time.time() * 1000.0
            self._latencies.extend([(now_ms - t) / 1000.0 for t in run.occurred])
        latencies = len(self._latencies)
        if run.pending is None or latencies >= METRICS_BATCH or self.tracker.in_flight == 0:
            self.publish_metrics()

    def publish_metrics(self) -> None:
        """Add the outputs acknowledged since the last call to ``prodcat_produced_total``,
        and their end-to-end latencies to the histogram.

        Delivery reports arrive one per output; counting each into Prometheus (a lock per
        counter, a bucket search per histogram) cost more than the rest of the callback, so
        they are buffered and published per :data:`METRICS_BATCH` reports, whenever nothing
        is left in flight, and on every :meth:`send` and :meth:`flush`."""
        if self._counts:
            counts, self._counts = self._counts, {}
            for counter, n in counts.items():
                counter.inc(n)
        latencies = self._latencies
        if not latencies:
            return
        self._latencies = []
        self._categorized_produced.inc(len(latencies))
        observe_all(self._end_to_end, [x if x > 0.0 else 0.0 for x in latencies])

    def _failed(self, run: _Run, err: Any, msg: Any) -> None:
        self.metrics.delivery_errors.labels(msg.topic()).inc()
        topic, partition = run.key
        offset = run.offset_of(msg.key())
        log.error(
            "output to %s for input %s[%s]@%s was refused: %s",
            msg.topic(),
            topic,
            partition,
            offset,
            err,
            extra={"topic": topic, "partition": partition, "offset": offset},
        )
        if not self.exactly_once:
            # The input's offset is never committed; restart reprocesses it. (In exactly-once
            # mode the transaction commit fails instead, and the batch is retried.)
            self.fatal = KafkaException(err)


def _log_value_dropped(record: DeadLetter, value: bytes | None) -> None:
    note = dict(record.headers).get(DLQ_VALUE_DROPPED, b"").decode("utf-8", "replace")
    log.warning(
        "dead letter sent without its %d-byte value: %s",
        len(value or b""),
        note,
        extra={"error_class": record.error_class},
    )


class _DeadLetterDelivery:
    """The delivery callback of one dead letter: a refusal as too large sends it again
    without its value; anything else is its run's."""

    __slots__ = ("record", "run", "sender")

    def __init__(self, sender: OutputSender, run: _Run, record: DeadLetter) -> None:
        self.sender = sender
        self.run = run
        self.record = record

    def __call__(self, err: Any, msg: Any) -> None:
        if err is not None and err.code() in TOO_LARGE and self.record.value is not None:
            self.sender._too_large(self, err)
            return
        self.run(err, msg)


class _Run:
    """The messages of one partition in one batch: their tracker entry, and the delivery
    callback (``run(err, msg)``) of every output they cause."""

    __slots__ = (
        "dead",
        "first",
        "key",
        "last",
        "members",
        "occurred",
        "pending",
        "remaining",
        "reviews",
        "sender",
    )

    def __init__(self, sender: OutputSender, key: tuple[str, int], first: int) -> None:
        self.sender = sender
        self.key = key
        self.first = first
        self.last = first
        self.members: list[Any] = []  # the consumed messages, to name one in an error
        self.occurred: list[int] = []  # occurred_ms of each categorized output
        self.reviews = 0
        self.dead = 0
        self.remaining = 0  # outputs not yet acknowledged
        self.pending: Pending | None = None

    def __call__(self, err: Any, msg: Any) -> None:
        sender = self.sender
        if err is not None:
            sender._failed(self, err, msg)
            return
        if self.pending is not None:
            sender.tracker.ack(self.pending)
        self.remaining -= 1
        if self.remaining == 0:
            sender._completed(self)

    def offset_of(self, key: bytes | None) -> int | str:
        """The offset of the input whose output has ``key`` (outputs keep the product id,
        dead letters the input's key), or the run's range when no single input matches."""
        found: list[int] = [m.offset() for m in self.members if key is not None and m.key() == key]
        if len(found) == 1:
            return found[0]
        return f"{self.first}..{self.last}"
