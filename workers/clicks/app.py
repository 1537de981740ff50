"""``prodcat clicks``: the faust app that learns search queries' categories from clicks.

Two agents, two changelogged tables::

    product.categorized ─┐                         repartition <app_id>-by-query (key: query)
                         ├─ join ── products table ──▶ tally ── queries table ──▶ query labels
    search.clicks ───────┘  (key product_id)           (key: normalized query)   search.query-labels

* **join** reads ``product.categorized`` and ``search.clicks``, both keyed by ``product_id``
  (co-partitioned): the table ``products`` keeps each product's latest category (the model's,
  or a person's override, which the feedback app publishes as a categorized event too). A
  click is joined with its product's category and forwarded, keyed by the normalized query,
  to the app's repartition topic. A click that breaks its contract, or names a product
  with no category yet, is dead-lettered with the usual headers, and the app carries on.
* **tally** keeps, per normalized query, a decayed category tally
  (:mod:`workers.clicks.tally`) in the table ``queries``. When the tally's label changes it
  publishes a ``category.label`` event to ``search.query-labels`` (compacted, key
  ``query:<normalized query>``; title = the query); when it loses its label, a tombstone.

``PRODCAT_TOPICS_LABELS=search.query-labels prodcat labels dump --out q.jsonl`` writes them as a
training file for ``prodcat train --data pseudo-queries.jsonl --labels q.jsonl``.

Why a faust app of its own and not a third agent of the feedback app: it is keyed by query,
not product; search traffic is orders of magnitude larger than corrections and must never
delay them; and it scales (and fails) on its own. It shares the feedback app's faust plumbing
(:mod:`workers.feedback.runtime`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

import faust
import msgspec

from workers.clicks.metrics import ClicksMetrics
from workers.clicks.tally import (
    action_weight,
    add_click,
    decode_tally,
    encode_tally,
    label_of,
    normalize_query,
    query_id,
)
from workers.core.categories import PATH_SEPARATOR
from workers.core.codec import Codec
from workers.core.errors import InvalidEventError, ProdcatError
from workers.core.events import (
    CategorizedEvent,
    ClickEvent,
    LabelEvent,
    derive_event_id,
)
from workers.core.settings import Settings
from workers.feedback.runtime import (
    FaustProcess,
    co_partitioned,
    crashed_service,
    message_headers,
    new_faust_app,
)
from workers.feedback.tables import RAW
from workers.kafka.clients import admin_config
from workers.kafka.deadletter import dead_letter_record, log_dead_letter
from workers.kafka.topics import ensure_topics, topic_specs
from workers.process.httpserver import HealthServer

__all__ = ["ClicksApp", "UnjoinedClickError"]

log = logging.getLogger(__name__)

START_TIMEOUT_S: Final = 60.0
STOP_TIMEOUT_S: Final = 30.0
SEND_TIMEOUT_S: Final = 30.0
WATCHDOG_INTERVAL_S: Final = 1.0


class UnjoinedClickError(InvalidEventError):
    """A click on a product with no category yet (no ``product.categorized`` event read)."""


class Joined(msgspec.Struct, frozen=True, array_like=True):
    """A click joined with its product's category, on the repartition topic."""

    query: str  # normalized
    shown: str  # as typed
    path: list[str]
    weight: float
    at: float  # event time, epoch seconds
    event_id: str


_JOINED: Final = msgspec.msgpack.Decoder(Joined)
_ENCODE: Final = msgspec.msgpack.encode


class ClicksApp(FaustProcess):
    """The ``prodcat clicks`` process: start, run, request_stop, stop."""

    NAME = "clicks app"

    def __init__(self, settings: Settings, *, instance: str | None = None) -> None:
        super().__init__()
        self.settings = settings
        self.instance = instance or socket.gethostname()
        self.codec = Codec(settings.classify.max_payload_bytes)
        self.metrics = ClicksMetrics()
        self._worker = f"clicks-{self.instance}"
        self._partitions = settings.kafka.partitions
        self._app: Any = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        s = self.settings
        t = s.topics
        admin = admin_config(s.kafka)
        wanted = {t.categorized, t.clicks, t.query_labels, t.dead_letter}
        ensure_topics(admin, [spec for spec in topic_specs(s) if spec.name in wanted])
        self._partitions = co_partitioned(admin, [t.categorized, t.clicks])
        if s.metrics.port:
            self._http = HealthServer(
                s.metrics.host, s.metrics.port,
                metrics=self.metrics.exposition, readiness=self.readiness,
            )  # fmt: skip
            self._http.start()

    def readiness(self) -> Mapping[str, bool]:
        assigned = recovered = False
        if self._app is not None and self.running:
            with contextlib.suppress(AttributeError):
                assigned = bool(self._app.assignor.assigned_actives())
                recovered = self._app.tables.recovery.completed.is_set()
        return {"app_running": self.running, "partitions_assigned": assigned,
                "tables_recovered": recovered}  # fmt: skip

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        if self._stop_requested.is_set():
            return
        app = self._app = self._build()
        try:
            await asyncio.wait_for(app.start(), START_TIMEOUT_S)
            self._running.set()
            log.info("clicks app %s started", self.settings.clicks.app_id)
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
            try:
                await asyncio.wait_for(app.stop(), STOP_TIMEOUT_S)
            except TimeoutError:
                log.error("the faust app did not stop within %.0f s", STOP_TIMEOUT_S)
            log.info("clicks app stopped")

    # ------------------------------------------------------------------ faust wiring

    def _build(self) -> Any:
        s = self.settings
        t, c = s.topics, s.clicks
        app = new_faust_app(
            s,
            app_id=c.app_id,
            client_id=f"clicks-{self.instance}",
            store=c.store,
            state_dir=c.state_dir,
            partitions=self._partitions,
        )
        schema: Any = faust.Schema(**RAW)
        products: Any = app.Table(
            "products", partitions=self._partitions, key_type=bytes, value_type=bytes,
            schema=schema, help="Per product: its latest category path.",
        )  # fmt: skip
        queries: Any = app.Table(
            "queries", partitions=self._partitions, key_type=bytes, value_type=bytes,
            schema=schema, help="Per normalized query: its decayed category tally.",
        )  # fmt: skip
        source = app.topic(t.categorized, t.clicks, **RAW)
        by_query = app.topic(f"{c.app_id}-by-query", partitions=self._partitions,
                             internal=True, **RAW)  # fmt: skip
        labels_out = app.topic(t.query_labels, **RAW)
        dead_out = app.topic(t.dead_letter, **RAW)

        async def dead_letter(error: InvalidEventError, message: Any) -> None:
            record = dead_letter_record(
                error, topic=message.topic, partition=message.partition, offset=message.offset,
                key=message.key, value=message.value, headers=message_headers(message.headers),
                worker=self._worker,
            )  # fmt: skip
            log_dead_letter(error, message.topic, message.partition, message.offset)
            await self._acknowledged(
                await dead_out.send(key=record.key, value=record.value, headers=record.headers)
            )
            self.metrics.dead_lettered.labels(message.topic, record.error_class).inc()

        async def join(stream: Any) -> None:
            async for event in stream.events():
                message = event.message
                self.metrics.consumed.labels(message.topic).inc()
                if message.topic == t.categorized:
                    try:
                        categorized = self.codec.decode(message.value, CategorizedEvent)
                    except InvalidEventError as exc:
                        self.metrics.ignored.labels(message.topic).inc()
                        log.warning(
                            "unreadable categorized event %s[%d]@%d skipped: %s",
                            message.topic, message.partition, message.offset, exc,
                        )  # fmt: skip
                        continue
                    path = PATH_SEPARATOR.join(categorized.category_path)
                    products[categorized.product_id.encode()] = path.encode()
                    continue
                try:
                    click = self.codec.decode(message.value, ClickEvent)
                    known = products.get(click.product_id.encode())
                    if known is None:
                        raise UnjoinedClickError(
                            f"ClickEvent: product {click.product_id!r} has no category yet (no "
                            f"{t.categorized} event read for it); replay this click once it "
                            "is categorized (at $.product_id)",
                            field="$.product_id",
                        )
                except InvalidEventError as exc:
                    await dead_letter(exc, message)
                    continue
                norm = normalize_query(click.query)
                joined = Joined(
                    norm, click.query, known.decode().split(PATH_SEPARATOR),
                    action_weight(click.action, c), click.occurred_at.timestamp(), click.event_id,
                )  # fmt: skip
                await self._acknowledged(
                    await by_query.send(key=norm.encode(), value=_ENCODE(joined))
                )
                self.metrics.joined.labels(click.action).inc()

        async def tally(stream: Any) -> None:
            async for value in stream:
                joined = _JOINED.decode(value)
                key = joined.query.encode()
                before = decode_tally(queries.get(key))
                after = add_click(before, path=tuple(joined.path), weight=joined.weight,
                                  at=joined.at, shown=joined.shown, settings=c)  # fmt: skip
                label = label_of(after, c)
                text = PATH_SEPARATOR.join(label) if label is not None else None
                if text != after.label:
                    await self._publish_label(labels_out, joined, label)
                    after = msgspec.structs.replace(after, label=text)
                queries[key] = encode_tally(after)

        app.agent(source, name="prodcat-clicks-join")(join)
        app.agent(by_query, name="prodcat-clicks-tally")(tally)
        return app

    async def _publish_label(self, out: Any, joined: Joined, label: tuple[str, ...] | None) -> None:
        key = query_id(joined.query).encode()
        if label is None:
            await self._acknowledged(await out.send(key=key, value=None))
            self.metrics.labels.labels("withdrawn").inc()
            return
        event = LabelEvent(
            event_type="category.label",
            event_id=derive_event_id(
                "category.label", joined.query, PATH_SEPARATOR.join(label), joined.event_id
            ),
            product_id=key.decode(),
            title=joined.query,
            category_path=list(label),
            source="user",
            label_time=datetime.fromtimestamp(joined.at, UTC),
            feedback_event_id=joined.event_id,
        )
        await self._acknowledged(await out.send(key=key, value=self.codec.encode(event)))
        self.metrics.labels.labels("set").inc()

    async def _acknowledged(self, future: Any) -> None:
        """Wait for the broker; if it refuses, stop the app (exit 1) rather than skip: the
        input is redelivered after a restart."""
        try:
            await asyncio.wait_for(future, SEND_TIMEOUT_S)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._failure = exc
            if self._stop_event is not None:
                self._stop_event.set()
            raise ProdcatError(f"publishing failed: {exc!r}") from exc
