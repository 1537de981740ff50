"""The classify worker: product events in, categorized events out, at least once.

::

    worker = ClassifyWorker(settings)
    worker.start()   # load the bundle, create topics and clients, serve /metrics
    worker.run()     # until request_stop()/stop(); then drain and close
    # from another thread: worker.stop() (drain, wait for run() to finish)

Each loop iteration consumes up to ``batch_max`` messages (what is fetched, or the
first message to arrive and what follows within ``batch_timeout_ms``), hands the
payloads to :class:`workers.classify.pipeline.BatchPipeline`, and produces one categorized
event per valid input (plus a review copy when needed) or one dead-letter record per
invalid one. A worker that keeps up does all of that in one iteration. A batch of
``overlap_min_batch`` or more (a backlog) overlaps instead: the model runs on a helper
thread (onnxruntime releases the GIL) while the loop produces the previous batch's
outputs and consumes the next, so at most one batch is between consume and produce.
Its model work is split into chunks, and when the loop is ready to finish the batch it
runs the chunks the helper has not started instead of waiting (both cores then run the
model; see :class:`workers.classify.modelwork.ModelWork`).

Offsets are committed only once the broker acknowledged every output of every
earlier message of the partition (:class:`workers.kafka.offsets.OffsetTracker`):
periodically and asynchronously, synchronously on revoke and on stop. In
exactly-once mode each batch is one transaction holding its outputs and its
consumed offsets instead (and the model runs on the loop's thread).

The model comes from the control topic ``prodcat.models`` (:mod:`workers.lifecycle.swap`): at
start the live version is fetched from the model store, verified and warmed (or the local
bundle ``PRODCAT_MODEL_BUNDLE`` is served, or the worker refuses to start, and says which);
afterwards a follower thread loads new versions off the hot path and the loop switches to
them between two batches. A batch in flight keeps the model set it began with, so no
message is dropped or classified twice because of a swap, and each output names the
version that produced it.

Nothing here installs signal handlers; see :mod:`workers.process.signals`.
"""

from __future__ import annotations

import gc
import logging
import socket
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaException, Producer
from prometheus_client import CollectorRegistry

from workers.classify.cache import ResultCache
from workers.classify.delivery import OutputSender
from workers.classify.metrics import ClassifyMetrics
from workers.classify.partitions import PartitionOwner
from workers.classify.pipeline import Batch, BatchPipeline
from workers.core.codec import Codec
from workers.core.errors import ConfigError, ProdcatError
from workers.core.product import ProductText
from workers.core.settings import Settings
from workers.kafka.clients import admin_config, consumer_config, producer_config
from workers.kafka.offsets import OffsetTracker, TopicPartitionKey
from workers.kafka.topics import ensure_topics, topic_specs
from workers.kafka.transactions import TransactionalSender
from workers.lifecycle.modelset import ModelSet
from workers.lifecycle.store import StoreUnavailableError
from workers.lifecycle.swap import ModelSwitcher
from workers.process.httpserver import HealthServer
from workers.process.osthreads import name_os_thread

__all__ = ["ClassifyWorker", "WorkerFailedError"]

log = logging.getLogger(__name__)

Message = Any
"""A consumed ``confluent_kafka.Message`` (its stubs make every accessor Optional, which
they are not for a message without error)."""

COMMIT_INTERVAL_S = 0.5
IDLE_POLL_S = 0.05
"""Longest wait of an idle loop for a first message (then it checks for a stop request,
a model swap, delivery reports and the commit interval)."""
CONTROL_READ_TIMEOUT_S = 15.0
WARM_UP_ITEMS = 256


class WorkerFailedError(ProdcatError):
    """The worker hit an error it cannot recover from in-process (it drained what it could)."""


class ClassifyWorker:
    """One classify worker: a consumer-group member with its own producer and model."""

    def __init__(
        self,
        settings: Settings,
        *,
        instance: str | None = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.settings = settings
        self.instance = instance or socket.gethostname()
        self.worker_name = f"classify@{self.instance}"
        self.metrics = ClassifyMetrics(registry)
        self.tracker = OffsetTracker()
        self.codec = Codec(settings.classify.max_payload_bytes)
        self.exactly_once = settings.classify.exactly_once
        t = settings.topics
        self.inputs = [t.product_created, t.product_updated]
        self.switcher: ModelSwitcher | None = None
        self.pipeline: BatchPipeline | None = None
        self.cache: ResultCache | None = None
        self.consumer: Any = None
        self.producer: Any = None
        self.http: HealthServer | None = None
        self.sender: OutputSender | None = None
        self._txn: TransactionalSender | None = None
        self._in_flight: _InFlight | None = None
        self._executor = ThreadPoolExecutor(
            max_workers=1,
            thread_name_prefix="prodcat-model",
            initializer=name_os_thread,
            initargs=("prodcat-model",),
        )
        self.owner = PartitionOwner(
            self.tracker,
            self.metrics,
            exactly_once=self.exactly_once,
            flush=self.flush,
            flush_timeout_s=settings.classify.drain_timeout_s,
            on_unassign=self._mark_revoked,
        )
        self._paused = False
        self._stop = threading.Event()
        self._loop_error: BaseException | None = None
        self._closed = threading.Event()
        self._run_thread: threading.Thread | None = None
        self._started = False
        self._last_commit = 0.0

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Create missing topics, load the live model (or the local bundle), create the
        clients, start the HTTP server and the model follower."""
        s = self.settings
        self.switcher = ModelSwitcher(s, self.metrics.lifecycle, sample=self._warm_up_sample)
        if s.model.bundle is None:  # the store is the only source: fail before any connection
            try:
                self.switcher.store.check()
            except StoreUnavailableError as exc:
                raise ConfigError(
                    f"no model bundle: {exc}, and no local bundle is configured; refusing to "
                    "become ready. Pass --bundle DIR or set PRODCAT_MODEL_BUNDLE"
                ) from exc
        used = {
            *self.inputs,
            s.topics.categorized,
            s.topics.review,
            s.topics.dead_letter,
            s.topics.models,
        }
        ensure_topics(
            admin_config(s.kafka), [spec for spec in topic_specs(s) if spec.name in used], 15.0
        )
        models = self.switcher.initial(CONTROL_READ_TIMEOUT_S)
        self.metrics.model.info(models.info())
        self.cache = ResultCache(s.redis, on_error=self._cache_error)
        self.pipeline = BatchPipeline(models, self.codec, self.metrics, self.cache)
        kafka_log = logging.getLogger("prodcat.kafka")
        self.producer = Producer(
            producer_config(
                s,
                self.instance,
                transactional=self.exactly_once,
                error_cb=self.owner.on_error,
                logger=kafka_log,
            )
        )
        self.sender = OutputSender(
            self.producer,
            s.topics,
            self.metrics,
            self.tracker,
            self.worker_name,
            exactly_once=self.exactly_once,
        )
        if self.exactly_once:
            self._txn = TransactionalSender(self.producer, s.classify.drain_timeout_s)
            self._txn.init()
        self.consumer = Consumer(
            consumer_config(
                s,
                self.instance,
                error_cb=self.owner.on_error,
                stats_cb=self.owner.on_stats,
                on_commit=self.owner.on_commit,
                logger=kafka_log,
            )
        )
        self.owner.consumer = self.consumer
        owner = self.owner
        self.consumer.subscribe(
            self.inputs, on_assign=owner.on_assign, on_revoke=owner.on_revoke, on_lost=owner.on_lost
        )
        if s.metrics.port:
            try:
                self.http = HealthServer(
                    s.metrics.host,
                    s.metrics.port,
                    metrics=self.metrics.exposition,
                    readiness=self.readiness,
                )
            except OSError as exc:
                raise ConfigError(
                    f"cannot serve metrics on {s.metrics.host}:{s.metrics.port} ({exc}); "
                    "set PRODCAT_METRICS_PORT (or --metrics-port) to a free port, 0 to disable"
                ) from exc
            self.http.start()
        # Everything loaded so far lives as long as the process: keep it out of the cyclic
        # GC's full collections (about 30 ms each over the loaded modules and model).
        gc.collect()
        gc.freeze()
        # The model thread gives the GIL up for every onnxruntime and numpy call; with the
        # default 5 ms switch interval it then waits up to 5 ms for the loop's pure-Python
        # work to let go each time (measured: 1 ms gave 19-23k events/s against 17-20k).
        sys.setswitchinterval(s.classify.switch_interval_ms / 1000.0)
        self.switcher.start()
        self._started = True
        log.info(
            "classify worker %s consuming %s in group %s (%s)",
            self.worker_name,
            ", ".join(self.inputs),
            s.classify.group_id,
            "exactly-once" if self.exactly_once else "at-least-once",
        )

    def request_stop(self) -> None:
        """Ask :meth:`run` to finish its batch, drain and return (signal-handler safe)."""
        self._stop.set()

    def stop(self) -> None:
        """Stop and drain; waits for :meth:`run` (running in another thread) to finish."""
        self.request_stop()
        runner = self._run_thread
        if runner is not None and runner is not threading.current_thread():
            self._closed.wait(self.settings.classify.drain_timeout_s + 10.0)
        elif runner is None and not self._closed.is_set():
            self._drain_and_close()

    def readiness(self) -> dict[str, bool]:
        return {
            "model_loaded": self.pipeline is not None,
            "partitions_assigned": bool(self.owner.assigned),
            "broker_reachable": self.owner.brokers_up,
        }

    def run(self) -> None:
        """Process batches until stopped, then drain and close. Raises
        :class:`WorkerFailedError` after draining if a fatal client error occurred."""
        if not self._started:
            self.start()
        self._run_thread = threading.current_thread()
        try:
            while not self._stop.is_set() and self.failure() is None:
                self.step()
        except KafkaException as exc:  # e.g. this transactional producer was fenced
            log.error("classify worker failed: %s", exc)
            self._loop_error = exc
        finally:
            self._drain_and_close()
        failure = self.failure()
        if failure is not None:
            raise WorkerFailedError(f"classify worker stopped on a fatal error: {failure}")

    def failure(self) -> BaseException | None:
        """The fatal error that stops the worker, if any (client, delivery or transaction)."""
        if self._loop_error is not None:
            return self._loop_error
        if self.owner.fatal is None and self.sender is not None:
            return self.sender.fatal
        return self.owner.fatal

    # ------------------------------------------------------------------ the loop

    def step(self) -> int:
        """One iteration: respect the in-flight bound, consume a batch and start it, finish
        the batch an earlier iteration left in flight, and finish this one too unless it
        overlaps. Returns the number of messages consumed.

        A batch of at least ``overlap_min_batch`` messages (a backlog: the worker is
        behind) overlaps in at-least-once mode: the model classifies it on a helper thread
        while this thread produces the previous batch's outputs and consumes the next one,
        so both cores work. A smaller batch (the worker keeps up) is classified and
        produced in this iteration: handing it to another thread and back would only add
        a loop iteration of latency and GIL hand-offs."""
        c = self.settings.classify
        producer = self.producer
        if self.switcher is not None:
            pending = self.switcher.take()
            if pending is not None:
                self._swap(pending)
        if not self.exactly_once:
            if self.tracker.in_flight >= c.max_in_flight:
                self._set_paused(True)
                producer.poll(0.05)
            elif self._paused:
                self._set_paused(False)
        messages = self._consume(wait=not (self._paused or self._in_flight is not None))
        producer.poll(0)
        started = self._begin(messages) if messages else None
        if self._in_flight is not None:
            self._finish(self._in_flight)
        self._in_flight = started
        if started is not None and not started.overlap:
            self._in_flight = None
            self._finish(started)
        now = time.monotonic()
        if not self.exactly_once and now - self._last_commit >= COMMIT_INTERVAL_S:
            self._last_commit = now
            self.commit(asynchronous=True)
        return len(messages)

    def _consume(self, *, wait: bool) -> list[Message]:
        """The next batch. Without ``wait`` (a batch is in flight, or consumption is
        paused), only what is already fetched. Otherwise what is fetched, or, if nothing is,
        the first message to arrive within :data:`IDLE_POLL_S` and whatever else arrives
        within ``batch_timeout_ms`` after it: an idle worker answers a lone event at once,
        a busy one gathers what came in while it worked."""
        c = self.settings.classify
        consume = self.consumer.consume
        messages: list[Message] = consume(c.batch_max, 0.0)
        if messages or not wait:
            return messages
        messages = consume(1, IDLE_POLL_S)
        if messages and c.batch_max > 1:
            messages += consume(c.batch_max - 1, c.batch_timeout_ms / 1000.0)
        return messages

    def _begin(self, messages: list[Message]) -> _InFlight | None:
        assert self.pipeline is not None
        started = time.perf_counter()
        kept: list[Message] = []
        counts: dict[str, int] = {}
        assigned = self.owner.assigned
        for m in messages:
            err = m.error()
            if err is not None:
                log.error(
                    "consume error on %s[%s]: %s",
                    m.topic(),
                    m.partition(),
                    err,
                    extra={"topic": m.topic(), "partition": m.partition(), "offset": m.offset()},
                )
                continue
            topic = m.topic()
            if (topic, m.partition()) not in assigned:
                continue  # revoked during this consume call; the new owner reads it
            counts[topic] = counts.get(topic, 0) + 1
            kept.append(m)
        for topic, n in counts.items():
            self.metrics.topic(topic).consumed.inc(n)
        self.metrics.batch_size.observe(len(messages))
        if not kept:
            return None
        overlap = not self.exactly_once and len(kept) >= self.settings.classify.overlap_min_batch
        self.metrics.batches.labels("overlap" if overlap else "inline").inc()
        batch = self.pipeline.begin([m.value() for m in kept], self._executor if overlap else None)
        return _InFlight(kept, batch, started, overlap)

    def _finish(self, flight: _InFlight) -> None:
        assert self.pipeline is not None and self.sender is not None
        outcomes = self.pipeline.finish(flight.batch)
        kept = flight.messages
        if flight.revoked:  # partitions revoked since the batch began: their new owner reads them
            pairs = [
                (m, o)
                for m, o in zip(kept, outcomes, strict=True)
                if (m.topic(), m.partition()) not in flight.revoked
            ]
            kept, outcomes = [m for m, _ in pairs], [o for _, o in pairs]
        sender = self.sender
        if self._txn is not None:
            self._txn.send_batch(
                self.consumer, kept, lambda: sender.send(kept, outcomes, track=False)
            )
        else:
            sender.send(kept, outcomes, track=True)
        self.metrics.in_flight.set(self.tracker.in_flight)
        self.metrics.batch_seconds.observe(time.perf_counter() - flight.started)

    def _swap(self, models: ModelSet) -> None:
        """Serve ``models`` from the next batch on (the batch in flight keeps its own)."""
        assert self.pipeline is not None
        started = time.perf_counter()
        old = self.pipeline.models
        self.pipeline.models = models
        lifecycle = self.metrics.lifecycle
        lifecycle.swap_seconds.observe(time.perf_counter() - started)
        lifecycle.swaps.labels(models.version).inc()
        self.metrics.model.info(models.info())
        log.info("now serving %s (was %s)", models.describe(), old.describe())

    def _warm_up_sample(self) -> list[ProductText]:
        """Real inputs of the latest batch, to warm a new model on (called off the loop)."""
        events = self.pipeline.recent if self.pipeline is not None else []
        return [ProductText.of(e) for e in events[:WARM_UP_ITEMS]]

    def _mark_revoked(self, keys: list[TopicPartitionKey]) -> None:
        """Partitions leave us: the batch in flight must not produce or track them."""
        if self._in_flight is not None:
            self._in_flight.revoked.update(keys)

    def _cache_error(self, operation: str) -> None:
        self.metrics.cache_errors.labels(operation).inc()

    # ------------------------------------------------------------------ commit, drain

    def commit(self, *, asynchronous: bool) -> None:
        """Commit every committable offset (at-least-once mode)."""
        self.owner.commit(asynchronous=asynchronous)

    def flush(self, deadline: float) -> bool:
        """Serve delivery reports until every output is acknowledged or ``deadline``."""
        return self.sender.flush(deadline) if self.sender is not None else True

    def _set_paused(self, paused: bool) -> None:
        assignment = self.consumer.assignment()
        if paused:
            self.consumer.pause(assignment)
        else:
            self.consumer.resume(assignment)
        if paused != self._paused:
            log.info(
                "%s consumption: %d outputs in flight (limit %d)",
                "pausing" if paused else "resuming",
                self.tracker.in_flight,
                self.settings.classify.max_in_flight,
            )
        self._paused = paused

    def _drain_and_close(self) -> None:
        if self._closed.is_set():
            return
        deadline = time.monotonic() + self.settings.classify.drain_timeout_s
        try:
            flight, self._in_flight = self._in_flight, None
            if flight is not None and self.failure() is None:
                self._finish(flight)  # the batch in flight is finished, not dropped
            if self.producer is not None and self.failure() is None and not self.flush(deadline):
                log.warning(
                    "drain: %d outputs still unacknowledged at the deadline; their inputs "
                    "stay uncommitted and will be reprocessed",
                    self.tracker.in_flight,
                )
            self.commit(asynchronous=False)
            if self.consumer is not None:
                self.consumer.close()
            if self.producer is not None:
                self.flush(deadline)
        except (KafkaException, RuntimeError) as exc:
            log.error("drain: %s", exc)
        finally:
            if self.switcher is not None:
                self.switcher.stop()
            self._executor.shutdown(wait=True)
            if self.cache is not None:
                self.cache.close()
            if self.http is not None:
                self.http.close()
            self._closed.set()
            log.info("classify worker %s stopped", self.worker_name)


@dataclass(slots=True)
class _InFlight:
    """A batch begun (model possibly still running) but not yet produced."""

    messages: list[Message]
    batch: Batch
    started: float
    overlap: bool  # the model runs on the helper thread while the loop consumes the next batch
    revoked: set[TopicPartitionKey] = field(default_factory=set)
