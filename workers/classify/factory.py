"""Everything a classify worker needs, built before the worker exists.

:func:`open_worker` creates the missing topics, loads the live model (or the local
bundle), and creates the Redis cache, the Kafka clients with their callbacks and the
health server, in that order; if any of them fails, it closes what it had opened and
raises. The :class:`~workers.classify.worker.ClassifyWorker` it returns is complete: no
collaborator is filled in later.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from confluent_kafka import Consumer, Producer
from prometheus_client import CollectorRegistry

from workers.classify.cache import ResultCache
from workers.classify.delivery import OutputSender
from workers.classify.flight import FlightSlot
from workers.classify.metrics import ClassifyMetrics
from workers.classify.partitions import ClientHealth, PartitionOwner
from workers.classify.pipeline import BatchPipeline
from workers.classify.worker import CONTROL_READ_TIMEOUT_S, ClassifyWorker, worker_readiness
from workers.core.codec import Codec
from workers.core.errors import ConfigError
from workers.core.settings import Settings
from workers.kafka.clients import admin_config, consumer_config, producer_config
from workers.kafka.offsets import OffsetTracker
from workers.kafka.topics import ensure_prodcat_topics
from workers.kafka.transactions import TransactionalSender
from workers.lifecycle.store import StoreUnavailableError
from workers.lifecycle.swap import ModelSwitcher
from workers.process.httpserver import HealthServer
from workers.process.osthreads import name_os_thread

__all__ = ["open_worker"]

log = logging.getLogger(__name__)


def open_worker(
    settings: Settings,
    *,
    instance: str | None = None,
    registry: CollectorRegistry | None = None,
) -> ClassifyWorker:
    """Create missing topics, load the live model (or the local bundle), create the
    clients and the HTTP server; a worker ready to :meth:`start`. Raises
    :class:`ConfigError` (no model, port taken) or :class:`ServiceUnavailableError`
    after closing whatever it had opened."""
    s = settings
    instance = instance or socket.gethostname()
    opened: list[Callable[[], object]] = []  # closers, in opening order
    try:
        metrics = ClassifyMetrics(registry)
        tracker = OffsetTracker()
        codec = Codec(s.classify.max_payload_bytes)
        flight = FlightSlot()
        executor = ThreadPoolExecutor(
            max_workers=1,
            thread_name_prefix="prodcat-model",
            initializer=name_os_thread,
            initargs=("prodcat-model",),
        )
        opened.append(lambda: executor.shutdown(wait=True))
        switcher = ModelSwitcher(s, metrics.lifecycle)
        opened.append(switcher.stop)
        if s.model.bundle is None:  # the store is the only source: fail before connecting
            try:
                switcher.store.check()
            except StoreUnavailableError as exc:
                raise ConfigError(
                    f"no model bundle: {exc}, and no local bundle is configured; refusing "
                    "to become ready. Pass --bundle DIR or set PRODCAT_MODEL_BUNDLE"
                ) from exc
        t = s.topics
        used = [t.product_created, t.product_updated, t.categorized, t.review, t.models]
        dead_letter_max = ensure_prodcat_topics(
            s, admin_config(s.kafka), [*used, t.dead_letter], 15.0
        )
        models = switcher.initial(CONTROL_READ_TIMEOUT_S)
        metrics.model.info(models.info())

        def cache_error(operation: str) -> None:
            metrics.cache_errors.labels(operation).inc()

        cache = ResultCache(s.redis, on_error=cache_error)
        opened.append(cache.close)
        pipeline = BatchPipeline(models, codec, metrics, cache)
        health = ClientHealth()
        exactly_once = s.classify.exactly_once
        producer = Producer(
            producer_config(
                s,
                instance,
                transactional=exactly_once,
                error_cb=health.on_error,
                message_max_bytes=dead_letter_max,
            )
        )
        worker_name = f"classify@{instance}"
        sender = OutputSender(
            producer,
            t,
            metrics,
            tracker,
            worker_name,
            exactly_once=exactly_once,
            dead_letter_max_bytes=dead_letter_max,
        )
        transactions = None
        if exactly_once:
            transactions = TransactionalSender(producer, s.classify.drain_timeout_s)
            transactions.init()
        owner = PartitionOwner(
            tracker,
            metrics,
            health,
            exactly_once=exactly_once,
            flush=sender.flush,
            flush_timeout_s=s.classify.drain_timeout_s,
            on_unassign=flight.revoke,
        )
        consumer = Consumer(
            consumer_config(
                s,
                instance,
                error_cb=health.on_error,
                stats_cb=owner.on_stats,
                on_commit=owner.on_commit,
            )
        )
        opened.append(consumer.close)
        http = None
        if s.metrics.port:
            try:
                http = HealthServer(
                    s.metrics.host,
                    s.metrics.port,
                    metrics=metrics.exposition,
                    readiness=lambda: worker_readiness(owner),
                )
            except OSError as exc:
                raise ConfigError(
                    f"cannot serve metrics on {s.metrics.host}:{s.metrics.port} ({exc}); "
                    "set PRODCAT_METRICS_PORT (or --metrics-port) to a free port, 0 to "
                    "disable"
                ) from exc
    except BaseException:
        for close in reversed(opened):
            try:
                close()
            except Exception:  # closing what half-opened: the first error is the one
                log.exception("closing after a failed start")
        raise
    return ClassifyWorker(
        s,
        instance=instance,
        metrics=metrics,
        tracker=tracker,
        codec=codec,
        switcher=switcher,
        pipeline=pipeline,
        cache=cache,
        producer=producer,
        sender=sender,
        consumer=consumer,
        health=health,
        owner=owner,
        flight=flight,
        executor=executor,
        transactions=transactions,
        http=http,
    )
