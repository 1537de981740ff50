"""The feedback app: the faust-streaming process behind ``prodcat feedback``.

One agent reads four co-partitioned topics keyed by ``product_id``: ``product.created`` and
``product.updated`` (the product text and seller), ``product.categorized`` (the model's
prediction) and ``category.feedback``. Two faust tables, backed by changelog topics in Kafka
(``<app_id>-products-changelog``, ``<app_id>-quality-changelog``), hold the state: per
product a :class:`~workers.feedback.state.ProductState`, and the quality counts of
:mod:`workers.feedback.quality`. What the agent does with each message is
:class:`~workers.feedback.handler.FeedbackHandler`; what it writes (overrides in Redis,
corrected categorized events, labels, dead letters) is
:class:`~workers.feedback.publisher.Publisher`. Side effects come before the state, and
every output has a deterministic id, so a feedback event redelivered after a crash repeats
them harmlessly (at-least-once).

Lifecycle, as the classify worker: :meth:`FeedbackApp.start` (the live model's taxonomy,
topics, HTTP server), :meth:`FeedbackApp.run` (blocks; runs the faust app on its own event
loop), :meth:`FeedbackApp.request_stop` (thread- and signal-safe), :meth:`FeedbackApp.stop`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

import redis.asyncio as aioredis

from workers.core.codec import Codec
from workers.core.settings import Settings
from workers.feedback.drift import psi
from workers.feedback.follow import ModelFollower
from workers.feedback.handler import FeedbackHandler
from workers.feedback.live import LiveModel
from workers.feedback.metrics import FeedbackMetrics, QualityCollector, Snapshot
from workers.feedback.parking import ParkedIndex
from workers.feedback.publisher import Publisher
from workers.feedback.reconnect import install_metadata_backoff
from workers.feedback.redislink import RedisLink
from workers.feedback.restore import Restorer
from workers.feedback.runtime import (
    FaustProcess,
    async_redis,
    co_partitioned,
    crashed_service,
    live_bundle_path,
    new_faust_app,
)
from workers.feedback.stalls import StallWatch
from workers.feedback.state import (
    ProductState,
)
from workers.feedback.tables import RAW, FeedbackTables
from workers.inference.bundle import load_bundle
from workers.kafka.clients import admin_config
from workers.kafka.topics import ensure_prodcat_topics
from workers.process.connectivity import redact_url
from workers.process.httpserver import HealthServer

__all__ = ["FeedbackApp"]

log = logging.getLogger(__name__)

START_TIMEOUT_S: Final = 60.0
STOP_TIMEOUT_S: Final = 30.0
SNAPSHOT_TIMEOUT_S: Final = 5.0
WATCHDOG_INTERVAL_S: Final = 1.0


def heartbeat_interval(session_timeout_s: float) -> float:
    """Heartbeats a fifth of the session timeout apart (at most 3 s, faust's default)."""
    return min(3.0, session_timeout_s / 5)


class FeedbackApp(FaustProcess):
    """The ``prodcat feedback`` process: explicit start, run, request_stop and stop."""

    NAME = "feedback app"

    def __init__(
        self,
        settings: Settings,
        *,
        instance: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self.settings = settings
        self.instance = instance or socket.gethostname()
        self.clock = clock
        self.codec = Codec(settings.classify.max_payload_bytes)
        self.metrics = FeedbackMetrics()
        self.metrics.add_collector(QualityCollector(self.quality_snapshot))
        self.model: LiveModel | None = None  # the live model's taxonomy, from start()
        self._partitions = settings.kafka.partitions
        self._redis: aioredis.Redis | None = None
        self._link: RedisLink | None = None
        self._restorer: Restorer | None = None
        self._handler: FeedbackHandler | None = None
        self._publisher: Publisher | None = None
        t = settings.topics
        self._stalls = StallWatch(
            {t.product_created, t.product_updated, t.categorized, t.feedback}, self.metrics
        )
        self._app: Any = None
        self._tables: FeedbackTables | None = None
        self._worker = f"feedback-{self.instance}"
        self._parked = ParkedIndex()
        self.metrics.parked.set_function(lambda: self._parked.total)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Load the live model's taxonomy, create missing topics, serve HTTP."""
        s = self.settings
        bundle = load_bundle(live_bundle_path(s))
        self.model = LiveModel.of(bundle)
        log.info(
            "categories checked against model %s (%d leaves)", bundle.version, len(bundle.taxonomy)
        )
        t = s.topics
        wanted = {t.product_created, t.product_updated, t.categorized, t.feedback}
        wanted |= {t.labels, t.dead_letter}
        admin = admin_config(s.kafka)
        ensure_prodcat_topics(s, admin, sorted(wanted))  # the dead letters' sized after inputs
        self._partitions = co_partitioned(
            admin, [t.product_created, t.product_updated, t.categorized, t.feedback]
        )
        if s.metrics.port:
            self._http = HealthServer(
                s.metrics.host,
                s.metrics.port,
                metrics=self.metrics.exposition,
                readiness=self.readiness,
            )
            self._http.start()

    def readiness(self) -> Mapping[str, bool]:
        app = self._app
        assigned = False
        recovered = False
        if app is not None and self.running:
            with contextlib.suppress(AttributeError):  # faust internals not up yet
                assigned = bool(app.assignor.assigned_actives())
                recovered = app.tables.recovery.completed.is_set()
        return {
            "app_running": self.running,
            "partitions_assigned": assigned,
            "tables_recovered": recovered,
            "redis": self._link is not None and self._link.available,
        }

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        if self._stop_requested.is_set():
            return
        s = self.settings
        self._redis = async_redis(s.redis)
        link = self._link = RedisLink(
            self._redis,
            prefix=s.redis.key_prefix,
            shown=redact_url(s.redis.url),
            probe_interval_s=s.feedback.redis_probe_interval_s,
            metrics=self.metrics,
            stop_event=self._stop_event,
        )
        await link.probe()
        app = self._app = self._build()
        assert self._restorer is not None
        helpers: list[asyncio.Task[None]] = []
        try:
            await asyncio.wait_for(app.start(), START_TIMEOUT_S)
            self._running.set()
            log.info("feedback app %s started", s.feedback.app_id)
            helpers = [
                asyncio.ensure_future(link.run()),
                asyncio.ensure_future(self._restorer.run()),
            ]
            if s.model.bundle is None:  # served from the store: follow the live version
                follower = ModelFollower(s, self._model_version, self._set_model, self._stop_event)
                helpers.append(asyncio.ensure_future(follower.run()))
            while not self._stop_event.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop_event.wait(), WATCHDOG_INTERVAL_S)
                crashed = crashed_service(app)
                if crashed is not None:
                    self._failure = crashed
                    log.error("a faust service crashed (%r): stopping the app", crashed)
                    break
                if self._handler is not None and self._tables_ready():
                    await self._stalls.check(app.consumer, self._handler.idle_for())
        finally:
            self._running.clear()
            log.info("feedback app stopping")
            self._stop_event.set()
            for task in helpers:
                task.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            try:
                await asyncio.wait_for(app.stop(), STOP_TIMEOUT_S)
            except TimeoutError:
                log.error("the faust app did not stop within %.0f s", STOP_TIMEOUT_S)
            finally:
                await self._redis.aclose()
            log.info("feedback app stopped")

    # ------------------------------------------------------------------ faust wiring

    def _build(self) -> Any:
        s = self.settings
        assert self.model is not None and self._redis is not None and self._stop_event is not None
        t = s.topics
        fb = s.feedback
        app = new_faust_app(
            s,
            app_id=fb.app_id,
            client_id=f"feedback-{self.instance}",
            store=fb.store,
            state_dir=fb.state_dir,
            partitions=self._partitions,
            consumer_group_instance_id=self.member_id(),
            broker_session_timeout=fb.session_timeout_s,
            broker_heartbeat_interval=heartbeat_interval(fb.session_timeout_s),
        )
        install_metadata_backoff()  # aiokafka retries metadata with no pause otherwise
        tables = self._tables = FeedbackTables(app, self._partitions, fb)
        source = app.topic(t.product_created, t.product_updated, t.categorized, t.feedback, **RAW)
        assert self._link is not None
        publisher = self._publisher = Publisher(
            s,
            model=self.model,
            link=self._link,
            out={name: app.topic(name, **RAW) for name in (t.categorized, t.labels, t.dead_letter)},
            metrics=self.metrics,
            codec=self.codec,
            worker=self._worker,
            on_failure=self._fail,
        )
        self._restorer = Restorer(
            link=self._link,
            tables=tables,
            parked=self._parked,
            metrics=self.metrics,
            app_id=fb.app_id,
            rate=fb.restore_rate,
            reconcile_interval_s=fb.reconcile_interval_s,
            assigned=self._assigned_feedback_partitions,
            ready=self._tables_ready,
            stop_event=self._stop_event,
        )
        handler = self._handler = FeedbackHandler(
            s,
            model=self.model,
            tables=tables,
            publisher=publisher,
            parked=self._parked,
            metrics=self.metrics,
            codec=self.codec,
            clock=self.clock,
            assigned=self._assigned_feedback_partitions,
        )

        async def process(stream: Any) -> None:
            async for event in stream.events():
                await handler.handle(event.message)

        app.agent(source, name="prodcat-feedback-agent")(process)

        async def on_revoked(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
            # the parked index of these partitions is rebuilt if they come back
            revoked = args[0] if args else set()
            self._parked.forget({tp.partition for tp in revoked if tp.topic == t.feedback})

        app.on_partitions_revoked.connect(on_revoked)
        return app

    def _model_version(self) -> str | None:
        return self.model.version if self.model is not None else None

    def _set_model(self, model: LiveModel) -> None:
        """Check feedback against ``model`` from the next event on (called on the loop)."""
        old = self.model
        self.model = model
        for part in (self._handler, self._publisher):
            if part is not None:
                part.model = model
        added = len(model.leaves - old.leaves) if old is not None else len(model.leaves)
        removed = len(old.leaves - model.leaves) if old is not None else 0
        log.info(
            "categories now checked against model %s (was %s): %d leaves, %d new, %d gone",
            model.version,
            old.version if old is not None else "none",
            len(model.leaves),
            added,
            removed,
        )

    def member_id(self) -> str | None:
        """The group.instance.id of this instance (None: dynamic membership)."""
        if not self.settings.feedback.static_membership:
            return None
        return f"{self.settings.feedback.app_id}.{self.instance}"

    def _fail(self, error: BaseException) -> None:
        """An output failed: stop the app (exit 1); the input is redelivered after a restart."""
        self._failure = error
        if self._stop_event is not None:
            self._stop_event.set()

    def _tables_ready(self) -> bool:
        """Tables recovered and no rebalance under way (faust internals: False until up)."""
        app = self._app
        with contextlib.suppress(AttributeError):
            return bool(
                app.tables.recovery.completed.is_set()
                and not app.rebalancing
                and not app.in_recovery
            )
        return False

    def _assigned_feedback_partitions(self) -> set[int]:
        """The feedback topic's partitions assigned to this app (none before faust is up)."""
        with contextlib.suppress(AttributeError):  # faust internals not up yet
            topic = self.settings.topics.feedback
            return {
                tp.partition for tp in self._app.assignor.assigned_actives() if tp.topic == topic
            }
        return set()

    # ------------------------------------------------------------------ quality snapshot

    def quality_snapshot(self) -> Snapshot | None:
        """The quality figures now (None before the app runs). Safe from any thread but
        the app's own loop: the tables are read on the loop."""
        loop = self._loop
        if loop is None or not self.running or loop.is_closed():
            return None
        try:
            current: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:  # no loop on this thread: the normal case
            current = None
        if current is loop:
            raise RuntimeError("quality_snapshot() blocks: call it from another thread")
        future = asyncio.run_coroutine_threadsafe(self._snapshot(), loop)
        return future.result(SNAPSHOT_TIMEOUT_S)

    async def _snapshot(self) -> Snapshot:
        assert self._tables is not None
        actives = self._app.assignor.assigned_actives()
        partitions = {tp.partition for tp in actives if tp.topic == self.settings.topics.feedback}
        quality = self._tables.summarize(now=self.clock(), partitions=partitions)
        drift: dict[str, float] = {}
        model = self.model
        if model is not None and model.prior is not None:
            observed = {
                category: counts.predictions
                for (version, category), counts in quality.categories.items()
                if version == model.version
            }
            value = psi(observed, model.prior)
            if value is not None:
                drift[model.version] = value
        return Snapshot(quality, self._tables.sizes(), drift)

    def product_state(self, product_id: str) -> ProductState | None:
        """A product's state, read on the app's loop (for tests and tools)."""
        loop = self._loop
        if loop is None or not self.running:
            return None

        async def read() -> ProductState | None:
            assert self._tables is not None
            return self._tables.state(product_id)

        return asyncio.run_coroutine_threadsafe(read(), loop).result(SNAPSHOT_TIMEOUT_S)
