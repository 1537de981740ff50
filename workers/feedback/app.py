"""The feedback app: faust-streaming agent and tables, Redis overrides, labels, dead letters.

One agent reads four co-partitioned topics keyed by ``product_id``: ``product.created`` and
``product.updated`` (the product text and seller), ``product.categorized`` (the model's
prediction) and ``category.feedback``. Two faust tables, backed by changelog topics in Kafka
(``<app_id>-products-changelog``, ``<app_id>-quality-changelog``), hold the state: per
product a :class:`~workers.feedback.state.ProductState`, and the quality counts of
:mod:`workers.feedback.quality`. For each valid feedback event the app, in this order:

1. decides with :func:`workers.feedback.policy.decide` (pure);
2. for a new override: writes ``{prefix}:override:{product_id}`` to Redis (retried until it
   succeeds: the classify worker reads it on its next event for the product), then publishes
   the corrected ``product.categorized`` event (``source: override``) and, when the product
   text is known and the path is a leaf of the live model, a ``category.label`` training
   row, and waits for the broker to acknowledge both;
3. updates the tables.

Side effects come before the state, and every output has a deterministic id, so a feedback
event redelivered after a crash repeats them harmlessly (at-least-once). Invalid feedback
(malformed, unknown category) goes to the dead-letter topic with ``prodcat-error-*`` headers
and the app carries on. Feedback for a product not seen yet is parked in its table entry
(:mod:`workers.feedback.parking`), applied when the product arrives, and dead-lettered as
``UnknownProductError`` once ``PRODCAT_FEEDBACK_UNKNOWN_GRACE_S`` passed without it.

Lifecycle, as the classify worker: :meth:`FeedbackApp.start` (bundle, topics, HTTP server),
:meth:`FeedbackApp.run` (blocks; runs the faust app on its own event loop),
:meth:`FeedbackApp.request_stop` (thread- and signal-safe), :meth:`FeedbackApp.stop`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

import faust
import msgspec
import redis
import redis.asyncio as aioredis

from workers.core.categories import format_path
from workers.core.codec import Codec
from workers.core.errors import InvalidEventError, ProdcatError
from workers.core.events import CategorizedEvent, FeedbackEvent, derive_event_id, utc_now
from workers.core.overrides import override_key
from workers.core.product import ProductText
from workers.core.settings import Settings
from workers.feedback.metrics import FeedbackMetrics, QualityCollector, Snapshot
from workers.feedback.outputs import label_event, override_event, override_value
from workers.feedback.parking import ParkedIndex, expire, park
from workers.feedback.policy import (
    Policy,
    UnknownProductError,
    check_category,
    decide,
    taxonomy_nodes,
    validate,
)
from workers.feedback.runtime import (
    async_redis,
    close_loop,
    co_partitioned,
    crashed_service,
    faust_credentials,
    live_bundle_path,
    message_headers,
)
from workers.feedback.state import (
    MAX_PARKED,
    OverrideState,
    ParkedFeedback,
    ProductState,
    text_of,
)
from workers.feedback.tables import RAW, FeedbackTables
from workers.inference.bundle import load_bundle
from workers.inference.featurizer import Featurizer
from workers.kafka.clients import admin_config
from workers.kafka.deadletter import dead_letter_record, log_dead_letter
from workers.kafka.topics import ensure_topics, topic_specs
from workers.process.connectivity import redact_url
from workers.process.httpserver import HealthServer

__all__ = ["FeedbackApp", "OutputError"]

log = logging.getLogger(__name__)

START_TIMEOUT_S: Final = 60.0
STOP_TIMEOUT_S: Final = 30.0
SEND_TIMEOUT_S: Final = 60.0
SNAPSHOT_TIMEOUT_S: Final = 5.0
REDIS_BACKOFF_MAX_S: Final = 30.0
WATCHDOG_INTERVAL_S: Final = 1.0


class OutputError(ProdcatError):
    """The broker did not acknowledge an output; the app stops so the input is redelivered."""


class FeedbackApp:
    """The ``prodcat feedback`` process: explicit start, run, request_stop and stop."""

    def __init__(
        self,
        settings: Settings,
        *,
        instance: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.instance = instance or socket.gethostname()
        self.clock = clock
        self.policy = Policy.from_settings(settings.feedback)
        self.codec = Codec(settings.classify.max_payload_bytes)
        self.metrics = FeedbackMetrics()
        self.metrics.add_collector(QualityCollector(self.quality_snapshot))
        self.model_version = ""
        self._nodes: frozenset[tuple[str, ...]] = frozenset()
        self._leaves: frozenset[tuple[str, ...]] = frozenset()
        self._featurizer: Featurizer | None = None
        self._partitions = settings.kafka.partitions
        self._http: HealthServer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._stop_requested = threading.Event()
        self._running = threading.Event()
        self._redis: aioredis.Redis | None = None
        self._redis_ok = False
        self._app: Any = None
        self._tables: FeedbackTables | None = None
        self._out: dict[str, Any] = {}
        self._worker = f"feedback-{self.instance}"
        self._failure: BaseException | None = None
        self._parked = ParkedIndex()
        self.metrics.parked.set_function(lambda: self._parked.total)

    # ------------------------------------------------------------------ lifecycle

    @property
    def running(self) -> bool:
        """True between the faust app having started and the stop request."""
        return self._running.is_set()

    def start(self) -> None:
        """Load the live model's taxonomy, create missing topics, serve HTTP."""
        s = self.settings
        bundle = load_bundle(live_bundle_path(s))
        self.model_version = bundle.version
        self._nodes = taxonomy_nodes(bundle.taxonomy)
        self._leaves = frozenset(bundle.taxonomy.leaves)
        self._featurizer = Featurizer(bundle.featurizer)
        log.info(
            "categories checked against model %s (%d leaves)", bundle.version, len(bundle.taxonomy)
        )
        t = s.topics
        wanted = {t.product_created, t.product_updated, t.categorized, t.feedback}
        wanted |= {t.labels, t.dead_letter}
        admin = admin_config(s.kafka)
        ensure_topics(admin, [spec for spec in topic_specs(s) if spec.name in wanted])
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

    def run(self) -> None:
        """Run the faust app until :meth:`request_stop`; returns after a clean stop.

        Raises :class:`ProdcatError` when a faust service crashed or the broker refused an
        output (the app was stopped; unfinished input is redelivered after a restart)."""
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._serve())
        finally:
            close_loop(loop)
        if self._failure is not None:
            raise ProdcatError(f"the feedback app stopped on an error: {self._failure!r}")

    def request_stop(self) -> None:
        """Ask :meth:`run` to stop (from a signal handler or another thread)."""
        self._stop_requested.set()
        loop, event = self._loop, self._stop_event
        if loop is not None and event is not None and not loop.is_closed():
            # RuntimeError: the loop closed meanwhile, so run() is over anyway
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(event.set)

    def stop(self) -> None:
        """Release what :meth:`start` opened (call after :meth:`run` returned)."""
        self.request_stop()
        if self._http is not None:
            self._http.close()
            self._http = None

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
            "redis": self._redis_ok,
        }

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        if self._stop_requested.is_set():
            return
        self._redis = async_redis(self.settings.redis)
        try:
            self._redis_ok = bool(await self._redis.ping())
        except (redis.RedisError, OSError) as exc:
            log.warning(
                "Redis at %s does not answer (%s); overrides wait until it does",
                redact_url(self.settings.redis.url),
                exc,
            )
        app = self._app = self._build()
        try:
            await asyncio.wait_for(app.start(), START_TIMEOUT_S)
            self._running.set()
            log.info("feedback app %s started", self.settings.feedback.app_id)
            while not self._stop_event.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop_event.wait(), WATCHDOG_INTERVAL_S)
                crashed = crashed_service(app)
                if crashed is not None:
                    self._failure = crashed
                    log.error("a faust service crashed (%r): stopping the app", crashed)
                    break
        finally:
            self._running.clear()
            log.info("feedback app stopping")
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
        t = s.topics
        fb = s.feedback
        fb.state_dir.mkdir(parents=True, exist_ok=True)
        app = faust.App(
            fb.app_id,
            broker=[f"kafka://{host.strip()}" for host in s.kafka.bootstrap.split(",")],
            broker_credentials=faust_credentials(s.kafka),
            broker_client_id=f"{s.kafka.client_id}-feedback-{self.instance}",
            store=fb.store,
            datadir=str(fb.state_dir),
            web_enabled=False,
            topic_disable_leader=True,
            topic_partitions=self._partitions,
            topic_replication_factor=s.kafka.replication_factor,
            consumer_auto_offset_reset="earliest",
            producer_acks=-1,
            producer_linger=0.0,
            processing_guarantee="at_least_once",
        )
        self._tables = FeedbackTables(app, self._partitions, fb)
        source = app.topic(t.product_created, t.product_updated, t.categorized, t.feedback, **RAW)
        self._out = {
            name: app.topic(name, **RAW) for name in (t.categorized, t.labels, t.dead_letter)
        }

        async def process(stream: Any) -> None:
            async for event in stream.events():
                await self._handle(event.message)

        app.agent(source, name="prodcat-feedback-agent")(process)

        async def on_revoked(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
            # the parked index of these partitions is rebuilt if they come back
            revoked = args[0] if args else set()
            self._parked.forget({tp.partition for tp in revoked if tp.topic == t.feedback})

        app.on_partitions_revoked.connect(on_revoked)
        return app

    # ------------------------------------------------------------------ handling

    async def _handle(self, message: Any) -> None:
        topic: str = message.topic
        self.metrics.consumed.labels(topic).inc()
        t = self.settings.topics
        try:
            await self._expire_parked(message.partition)
        except (asyncio.CancelledError, OutputError):
            raise
        except Exception:  # a bug: never let it stop the agent
            log.exception("expiring parked feedback of partition %d failed", message.partition)
        try:
            if topic == t.feedback:
                await self._on_feedback(message)
            elif topic == t.categorized:
                await self._on_categorized(message)
            else:
                await self._on_product(message)
        except (asyncio.CancelledError, OutputError):
            raise
        except Exception as exc:  # a bug: never let one event stop the agent
            log.exception("unexpected error on %s[%d]@%d", topic, message.partition, message.offset)
            if topic == t.feedback:
                await self._dead_letter(exc, self._source_of(message))

    def _source_of(self, message: Any) -> ParkedFeedback:
        """A feedback message as parked (and as dead-lettered): value, key, headers, origin."""
        return ParkedFeedback(
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            key=message.key,
            value=message.value,
            headers=tuple(message_headers(message.headers)),
            parked_at=self.clock(),
        )

    async def _on_product(self, message: Any) -> None:
        try:
            event = self.codec.decode_product(message.value)
        except InvalidEventError:
            self.metrics.ignored.labels(message.topic).inc()
            return
        assert self._tables is not None
        state = self._tables.state(event.product_id) or ProductState()
        self._tables.save(
            event.product_id,
            msgspec.structs.replace(
                state, text=text_of(event), seller_id=event.seller_id or state.seller_id
            ),
        )
        if state.pending:
            await self._release_parked(event.product_id, message.partition)

    async def _on_categorized(self, message: Any) -> None:
        try:
            event = self.codec.decode(message.value, CategorizedEvent)
        except InvalidEventError:
            self.metrics.ignored.labels(message.topic).inc()
            return
        tables = self._tables
        assert tables is not None
        state = tables.state(event.product_id) or ProductState()
        tables.save(event.product_id, tables.record_prediction(message.partition, state, event))
        if state.pending:
            await self._release_parked(event.product_id, message.partition)

    async def _on_feedback(self, message: Any) -> None:
        tables = self._tables
        assert tables is not None
        source = self._source_of(message)
        try:
            event = self.codec.decode(source.value or b"", FeedbackEvent)
            state = tables.state(event.product_id)
            if state is not None and state.known() and state.pending:  # after a crash
                await self._release_parked(event.product_id, message.partition)
                state = tables.state(event.product_id)
            if state is None or not state.known():
                check_category(event, self._nodes, model_version=self.model_version)
                self._park(event.product_id, state, source)
                return
            validate(event, state, self._nodes, model_version=self.model_version)
        except InvalidEventError as exc:
            await self._dead_letter(exc, source)
            return
        await self._apply(event, state, message.partition)

    # ------------------------------------------------------------------ parked feedback

    def _park(self, product_id: str, state: ProductState | None, source: ParkedFeedback) -> None:
        """Keep feedback for a product not seen yet in its table entry (the changelog makes it
        survive a restart). Raises :class:`UnknownProductError` when too many already wait."""
        tables = self._tables
        assert tables is not None
        parked = park(state, source, limit=MAX_PARKED)
        if parked is None:
            raise UnknownProductError(
                f"FeedbackEvent: product {product_id!r} is unknown to the feedback app and "
                f"{MAX_PARKED} feedback events already wait for it (at $.product_id)",
                field="$.product_id",
            )
        if parked is not state:
            tables.save(product_id, parked)
        self._parked.update(source.partition, product_id, parked)
        log.info(
            "feedback %s[%d]@%d parked: product %s not seen yet",
            source.topic,
            source.partition,
            source.offset,
            product_id,
        )

    async def _release_parked(self, product_id: str, partition: int) -> None:
        """Apply a now known product's parked feedback in order, as live feedback; each item
        leaves the table entry with the state it produced (a crash repeats only the rest)."""
        tables = self._tables
        assert tables is not None
        released = 0
        while True:
            state = tables.state(product_id)
            if state is None or not state.known() or not state.pending:
                break
            item, rest = state.pending[0], msgspec.structs.replace(state, pending=state.pending[1:])
            try:
                event = self.codec.decode(item.value or b"", FeedbackEvent)
                validate(event, rest, self._nodes, model_version=self.model_version)
            except InvalidEventError as exc:
                await self._dead_letter(exc, item)
                tables.save(product_id, rest)
                continue
            await self._apply(event, rest, partition, save_unchanged=True)
            released += 1
        self._parked.update(partition, product_id, state)
        if released:
            log.info("applied %d parked feedback events of product %s", released, product_id)

    async def _expire_parked(self, partition: int) -> None:
        """Dead-letter this partition's feedback parked longer than the grace period (from the
        agent: a table key may only be written while processing its partition's event)."""
        tables = self._tables
        assert tables is not None
        if not self._parked.indexed(partition):
            self._index_parked(partition)
        now = self.clock()
        grace = float(self.settings.feedback.unknown_grace_s)
        for product_id in self._parked.due(partition, now=now, grace_s=grace):
            state = tables.state(product_id)
            if state is None:
                self._parked.update(partition, product_id, None)
                continue
            old, rest = expire(state, now=now, grace_s=grace)
            for item in old:
                error = UnknownProductError(
                    f"FeedbackEvent: product {product_id!r} is unknown to the feedback app: no "
                    "product.created/updated or product.categorized event was seen for it "
                    f"within {grace:g} s (PRODCAT_FEEDBACK_UNKNOWN_GRACE_S) (at $.product_id)",
                    field="$.product_id",
                )
                await self._dead_letter(error, item)
                self.metrics.parked_expired.inc()
            if old:
                if rest.known() or rest.pending:
                    tables.save(product_id, rest)
                else:
                    tables.delete(product_id)
            self._parked.update(partition, product_id, rest)

    def _index_parked(self, partition: int) -> None:
        """Index the parked feedback of every assigned partition not indexed yet (one scan)."""
        assert self._tables is not None
        wanted = {partition}
        with contextlib.suppress(AttributeError):  # faust internals not up yet
            feedback_topic = self.settings.topics.feedback
            wanted |= {
                tp.partition
                for tp in self._app.assignor.assigned_actives()
                if tp.topic == feedback_topic and not self._parked.indexed(tp.partition)
            }
        self._parked.rebuild(wanted, self._tables.parked_states())

    # ------------------------------------------------------------------ applying feedback

    async def _apply(
        self,
        event: FeedbackEvent,
        state: ProductState,
        partition: int,
        *,
        save_unchanged: bool = False,
    ) -> None:
        """Decide on one valid feedback event of a known product, publish, update the tables."""
        tables = self._tables
        assert tables is not None
        effect = decide(state, event, self.policy)
        if effect.outcome != "duplicate":
            if effect.override is not None:
                await self._publish_override(event, effect.state, effect.override)
            tables.record_feedback(partition, state, effect)
            tables.save(event.product_id, effect.state)
        elif save_unchanged:
            tables.save(event.product_id, state)
        self.metrics.feedback.labels(event.source, event.action, effect.outcome).inc()
        if effect.override is not None:
            latency = self.clock() - event.occurred_at.timestamp()
            self.metrics.override_latency.observe(max(latency, 0.0))

    # ------------------------------------------------------------------ outputs

    async def _publish_override(
        self, event: FeedbackEvent, state: ProductState, override: OverrideState
    ) -> None:
        key = override_key(self.settings.redis.key_prefix, event.product_id)
        await self._redis_set(key, override_value(event, override))
        version = state.prediction.model_version if state.prediction else self.model_version
        categorized = override_event(
            event,
            override,
            model_version=version,
            input_hash=self._input_hash(event.product_id, state),
            now=utc_now(),
        )
        kafka_key = event.product_id.encode()
        t = self.settings.topics
        encode = self.codec.encode
        pending = [await self._out[t.categorized].send(key=kafka_key, value=encode(categorized))]
        self.metrics.overrides.labels(override.source).inc()
        if state.text is None:
            self.metrics.labels_skipped.labels("no_product_text").inc()
        elif override.category_path not in self._leaves:
            self.metrics.labels_skipped.labels("not_a_leaf").inc()
        else:
            label = label_event(event, override, state.text)
            pending.append(await self._out[t.labels].send(key=kafka_key, value=encode(label)))
            self.metrics.labels.labels(override.source).inc()
        await self._acknowledged(pending, "the override's outputs")
        log.info(
            "override %s -> %s (%s, feedback %s)",
            event.product_id,
            format_path(override.category_path),
            override.source,
            event.event_id,
        )

    def _input_hash(self, product_id: str, state: ProductState) -> str:
        if state.input_hash:
            return state.input_hash
        if state.text is not None and self._featurizer is not None:
            return self._featurizer.content_hash(ProductText.of(state.text))
        return derive_event_id("product", product_id)

    async def _redis_set(self, key: str, value: bytes) -> None:
        """SET without expiry, retried with back-off until it succeeds or the app stops."""
        assert self._redis is not None and self._stop_event is not None
        delay = 0.2
        while True:
            try:
                await self._redis.set(key, value)
                self._redis_ok = True
                return
            except (redis.RedisError, OSError) as exc:
                self._redis_ok = False
                self.metrics.redis_errors.inc()
                log.warning(
                    "writing override %s to Redis failed (%s); retry in %.1f s", key, exc, delay
                )
            if self._stop_event.is_set():
                raise asyncio.CancelledError  # not processed: redelivered after restart
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop_event.wait(), delay)
            delay = min(delay * 2, REDIS_BACKOFF_MAX_S)

    async def _acknowledged(self, futures: list[Any], what: str) -> None:
        """Wait for the broker's acknowledgements. When it refuses or does not answer, the
        event cannot be completed: stop the app (exit 1) rather than skip it; after a restart
        it is redelivered from the last committed offset."""
        try:
            await asyncio.wait_for(asyncio.gather(*futures), SEND_TIMEOUT_S)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._failure = exc
            if self._stop_event is not None:
                self._stop_event.set()
            raise OutputError(f"publishing {what} failed: {exc!r}") from exc

    async def _dead_letter(self, error: BaseException, source: ParkedFeedback) -> None:
        """Dead-letter a feedback message (live or parked): its key, value and headers as read,
        with error headers naming its original topic, partition and offset."""
        record = dead_letter_record(
            error,
            topic=source.topic,
            partition=source.partition,
            offset=source.offset,
            key=source.key,
            value=source.value,
            headers=list(source.headers),
            worker=self._worker,
        )
        log_dead_letter(error, source.topic, source.partition, source.offset)
        out = self._out[self.settings.topics.dead_letter]
        future = await out.send(key=record.key, value=record.value, headers=record.headers)
        await self._acknowledged([future], "a dead letter")
        self.metrics.dead_lettered.labels(source.topic, record.error_class).inc()

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
        return Snapshot(quality, self._tables.sizes())

    def product_state(self, product_id: str) -> ProductState | None:
        """A product's state, read on the app's loop (for tests and tools)."""
        loop = self._loop
        if loop is None or not self.running:
            return None

        async def read() -> ProductState | None:
            assert self._tables is not None
            return self._tables.state(product_id)

        return asyncio.run_coroutine_threadsafe(read(), loop).result(SNAPSHOT_TIMEOUT_S)
