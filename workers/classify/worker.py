"""The classify worker: product events in, categorized events out, at least once.

::

    worker = open_worker(settings)  # topics, the live model, clients, HTTP server
    worker.start()   # subscribe, serve /metrics, follow the control topic
    worker.run()     # until request_stop()/stop(); then drain and close
    # from another thread: worker.stop() (drain, wait for run() to finish)

:func:`workers.classify.factory.open_worker` builds every collaborator before the
worker exists (and closes what it opened if one of them fails), so a worker object is
always complete.

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
version that produced it. Nothing here installs signal handlers (:mod:`workers.process.signals`).
"""

from __future__ import annotations

import gc
import logging
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from confluent_kafka import KafkaException

from workers.classify.cache import ResultCache
from workers.classify.delivery import OutputSender
from workers.classify.flight import FlightSlot, InFlight
from workers.classify.keys import KeyCheck
from workers.classify.metrics import ClassifyMetrics
from workers.classify.partitions import ClientHealth, PartitionOwner
from workers.classify.pipeline import BatchPipeline
from workers.core.codec import Codec
from workers.core.errors import ProdcatError
from workers.core.product import ProductText
from workers.core.settings import Settings
from workers.kafka.offsets import OffsetTracker
from workers.kafka.transactions import TransactionalSender
from workers.lifecycle.modelset import ModelSet
from workers.lifecycle.swap import ModelSwitcher
from workers.process.httpserver import HealthServer

__all__ = ["ClassifyWorker", "WorkerFailedError", "worker_readiness"]

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
    """One classify worker: a consumer-group member with its own producer and model.

    Build it with :func:`workers.classify.factory.open_worker`; the constructor takes the
    collaborators ready-made.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        instance: str,
        metrics: ClassifyMetrics,
        tracker: OffsetTracker,
        codec: Codec,
        switcher: ModelSwitcher,
        pipeline: BatchPipeline,
        cache: ResultCache,
        producer: Any,
        sender: OutputSender,
        consumer: Any,
        health: ClientHealth,
        owner: PartitionOwner,
        flight: FlightSlot,
        executor: ThreadPoolExecutor,
        transactions: TransactionalSender | None = None,
        http: HealthServer | None = None,
    ) -> None:
        self.settings = settings
        self.instance = instance
        self.worker_name = f"classify@{instance}"
        self.metrics = metrics
        self.tracker = tracker
        self.codec = codec
        self.exactly_once = settings.classify.exactly_once
        t = settings.topics
        self.inputs = [t.product_created, t.product_updated]
        self.switcher = switcher
        self.pipeline = pipeline
        self.cache = cache
        self.producer = producer
        self.sender = sender
        self.consumer = consumer
        self.health = health
        self.owner = owner
        self.http = http
        self._txn = transactions
        self.keys = KeyCheck(metrics.key_mismatch)
        self._flight = flight
        self._executor = executor
        self._paused = False
        self._stop = threading.Event()
        self._loop_error: BaseException | None = None
        self._closed = threading.Event()
        self._run_thread: threading.Thread | None = None
        self._started = False
        self._last_commit = 0.0

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Subscribe to the inputs, serve HTTP, probe Redis, follow the control topic."""
        s = self.settings
        owner = self.owner
        self.consumer.subscribe(
            self.inputs, on_assign=owner.on_assign, on_revoke=owner.on_revoke, on_lost=owner.on_lost
        )
        if self.http is not None:
            self.http.start()
        self.cache.start_probe(self.metrics.cache_available.set)  # idle or not
        # Everything loaded so far lives as long as the process: keep it out of the cyclic
        # GC's full collections (about 30 ms each over the loaded modules and model).
        gc.collect()
        gc.freeze()
        # The model thread gives the GIL up for every onnxruntime and numpy call; with the
        # default 5 ms switch interval it then waits up to 5 ms for the loop's pure-Python
        # work to let go each time (measured: 1 ms gave 19-23k events/s against 17-20k).
        sys.setswitchinterval(s.classify.switch_interval_ms / 1000.0)
        self.switcher.start(sample=self._warm_up_sample)
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
        return worker_readiness(self.owner)

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
        return self.health.fatal or self.sender.fatal

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
        pending = self.switcher.take()
        if pending is not None:
            self._swap(pending)
        if not self.exactly_once:
            if self.tracker.in_flight >= c.max_in_flight:
                self._set_paused(True)
                self.sender.poll(0.05)
            elif self._paused:
                self._set_paused(False)
        flight = self._flight
        messages = self._consume(wait=not (self._paused or flight.batch is not None))
        self.sender.poll(0)
        started = self._begin(messages) if messages else None
        if flight.batch is not None:
            self._finish(flight.batch)
        flight.batch = started
        if started is not None and not started.overlap:
            flight.batch = None
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

    def _begin(self, messages: list[Message]) -> InFlight | None:
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
        return InFlight(kept, batch, started, overlap)

    def _finish(self, flight: InFlight) -> None:
        outcomes = self.pipeline.finish(flight.batch)
        kept = flight.messages
        if flight.revoked:  # partitions revoked since the batch began: their new owner reads them
            pairs = [
                (m, o)
                for m, o in zip(kept, outcomes, strict=True)
                if (m.topic(), m.partition()) not in flight.revoked
            ]
            kept, outcomes = [m for m, _ in pairs], [o for _, o in pairs]
        self.keys.check(kept, outcomes)
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
        return [ProductText.of(e) for e in self.pipeline.recent[:WARM_UP_ITEMS]]

    # ------------------------------------------------------------------ commit, drain

    def commit(self, *, asynchronous: bool) -> None:
        """Commit every committable offset (at-least-once mode)."""
        self.owner.commit(self.consumer, asynchronous=asynchronous)

    def flush(self, deadline: float) -> bool:
        """Serve delivery reports until every output is acknowledged or ``deadline``."""
        return self.sender.flush(deadline)

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
            flight, self._flight.batch = self._flight.batch, None
            if flight is not None and self.failure() is None:
                self._finish(flight)  # the batch in flight is finished, not dropped
            if self.failure() is None and not self.flush(deadline):
                log.warning(
                    "drain: %d outputs still unacknowledged at the deadline; their inputs "
                    "stay uncommitted and will be reprocessed",
                    self.tracker.in_flight,
                )
            self.commit(asynchronous=False)
            self.consumer.close()
            self.flush(deadline)
        except (KafkaException, RuntimeError) as exc:
            log.error("drain: %s", exc)
        finally:
            self.switcher.stop()
            self._executor.shutdown(wait=True)
            self.cache.close()
            if self.http is not None:
                self.http.close()
            self._closed.set()
            log.info("classify worker %s stopped", self.worker_name)


def worker_readiness(owner: PartitionOwner) -> dict[str, bool]:
    """What ``/readyz`` reports for a worker whose partitions ``owner`` holds."""
    return {
        "model_loaded": True,  # an open worker has its model
        "partitions_assigned": bool(owner.assigned),
        "broker_reachable": owner.health.brokers_up,
    }
