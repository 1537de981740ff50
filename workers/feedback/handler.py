"""What the feedback app does with each message: products, predictions and feedback.

:class:`FeedbackHandler` is the faust agent's body (:mod:`workers.feedback.app` wires it):
it folds product and categorized events into the per-product state, and for each valid
feedback event decides (:func:`workers.feedback.policy.decide`), has the
:class:`~workers.feedback.publisher.Publisher` publish an override, then updates the
tables. Feedback for a product not seen yet is parked in its table entry
(:mod:`workers.feedback.parking`), applied when the product arrives, and dead-lettered as
``UnknownProductError`` once ``PRODCAT_FEEDBACK_UNKNOWN_GRACE_S`` passed without it.
Call everything on the app's event loop (faust tables are not thread-safe).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection
from typing import Any

import msgspec

from workers.core.codec import Codec
from workers.core.errors import InvalidEventError
from workers.core.events import CategorizedEvent, FeedbackEvent
from workers.core.settings import Settings
from workers.feedback.live import LiveModel
from workers.feedback.metrics import FeedbackMetrics
from workers.feedback.parking import ParkedIndex, expire, park
from workers.feedback.policy import (
    Policy,
    UnknownProductError,
    check_category,
    decide,
    validate,
)
from workers.feedback.publisher import OutputError, Publisher
from workers.feedback.runtime import message_headers
from workers.feedback.state import (
    MAX_PARKED,
    OverrideState,
    ParkedFeedback,
    ProductState,
    text_of,
)
from workers.feedback.tables import FeedbackTables

__all__ = ["FeedbackHandler"]

log = logging.getLogger(__name__)


class FeedbackHandler:
    """Handles every message of the app's agent (see the module docstring)."""

    def __init__(
        self,
        settings: Settings,
        *,
        model: LiveModel,
        tables: FeedbackTables,
        publisher: Publisher,
        parked: ParkedIndex,
        metrics: FeedbackMetrics,
        codec: Codec,
        clock: Callable[[], float],
        assigned: Callable[[], Collection[int]],
    ) -> None:
        """``assigned`` gives the feedback topic's partitions assigned to this app."""
        self.settings = settings
        self.model = model
        self.tables = tables
        self.publisher = publisher
        self.parked = parked
        self.metrics = metrics
        self.codec = codec
        self.clock = clock
        self.assigned = assigned
        self.policy = Policy.from_settings(settings.feedback)
        self._active = 0
        self._last_at = time.monotonic()

    def idle_for(self) -> float:
        """Seconds since the agent last finished a message (0 while it handles one)."""
        return 0.0 if self._active else time.monotonic() - self._last_at

    async def handle(self, message: Any) -> None:
        self._active += 1
        try:
            await self._handle(message)
        finally:
            self._active -= 1
            self._last_at = time.monotonic()

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
                await self.publisher.dead_letter(exc, self._source_of(message))

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
        state = self.tables.state(event.product_id) or ProductState()
        self.tables.save(
            event.product_id,
            msgspec.structs.replace(
                state, text=text_of(event), seller_id=event.seller_id or state.seller_id
            ),
            message.partition,
        )
        if state.pending:
            await self._release_parked(event.product_id, message.partition)

    async def _on_categorized(self, message: Any) -> None:
        try:
            event = self.codec.decode(message.value, CategorizedEvent)
        except InvalidEventError:
            self.metrics.ignored.labels(message.topic).inc()
            return
        tables = self.tables
        state = tables.state(event.product_id) or ProductState()
        after = tables.record_prediction(message.partition, state, event)
        where = (message.partition, message.offset)
        override = after.override
        if override is None:
            tables.save(event.product_id, after, message.partition)
        elif event.source == "override":
            same = tuple(event.category_path) == override.category_path
            if same and override.shown_before(*where):
                after = _shown(after, override, where)  # the latest answer is the override
            tables.save(event.product_id, after, message.partition)
        elif not override.shown_before(*where):
            tables.save(event.product_id, after, message.partition)  # an override follows it
        else:
            # The worker answered without the override (Redis had lost it, or the answer
            # was looked up just before the override was written): put it back in Redis and
            # answer as the worker would have, so the product's latest answer is the override.
            with self.publisher.overriding(event.product_id):
                shown = await self.publisher.reassert(event, override)
                tables.save(event.product_id, _shown(after, override, shown), message.partition)
        if state.pending:
            await self._release_parked(event.product_id, message.partition)

    async def _on_feedback(self, message: Any) -> None:
        tables = self.tables
        source = self._source_of(message)
        try:
            event = self.codec.decode(source.value or b"", FeedbackEvent)
            state = tables.state(event.product_id)
            if state is not None and state.known() and state.pending:  # after a crash
                await self._release_parked(event.product_id, message.partition)
                state = tables.state(event.product_id)
            if state is None or not state.known():
                check_category(
                    event,
                    self.model.nodes,
                    model_version=self.model.version,
                    new_ok=self.policy.may_be_new(event),  # decided again once it is known
                )
                self._park(event.product_id, state, source)
                return
            validate(
                event, state, self.model.nodes, model_version=self.model.version, policy=self.policy
            )
        except InvalidEventError as exc:
            await self.publisher.dead_letter(exc, source)
            return
        await self._apply(event, state, message.partition)

    # ------------------------------------------------------------------ parked feedback

    def _park(self, product_id: str, state: ProductState | None, source: ParkedFeedback) -> None:
        """Keep feedback for a product not seen yet in its table entry (the changelog makes it
        survive a restart). Raises :class:`UnknownProductError` when too many already wait."""
        tables = self.tables
        parked = park(state, source, limit=MAX_PARKED)
        if parked is None:
            raise UnknownProductError(
                f"FeedbackEvent: product {product_id!r} is unknown to the feedback app and "
                f"{MAX_PARKED} feedback events already wait for it (at $.product_id)",
                field="$.product_id",
            )
        if parked is not state:
            tables.save(product_id, parked, source.partition)
        self.parked.update(source.partition, product_id, parked)
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
        tables = self.tables
        released = 0
        while True:
            state = tables.state(product_id)
            if state is None or not state.known() or not state.pending:
                break
            item, rest = state.pending[0], msgspec.structs.replace(state, pending=state.pending[1:])
            try:
                event = self.codec.decode(item.value or b"", FeedbackEvent)
                validate(
                    event,
                    rest,
                    self.model.nodes,
                    model_version=self.model.version,
                    policy=self.policy,
                )
            except InvalidEventError as exc:
                await self.publisher.dead_letter(exc, item)
                tables.save(product_id, rest, partition)
                continue
            await self._apply(event, rest, partition, save_unchanged=True)
            released += 1
        self.parked.update(partition, product_id, state)
        if released:
            log.info("applied %d parked feedback events of product %s", released, product_id)

    async def _expire_parked(self, partition: int) -> None:
        """Dead-letter this partition's feedback parked longer than the grace period (from the
        agent: a table key may only be written while processing its partition's event)."""
        tables = self.tables
        if not self.parked.indexed(partition):
            self._index_parked(partition)
        now = self.clock()
        grace = float(self.settings.feedback.unknown_grace_s)
        for product_id in self.parked.due(partition, now=now, grace_s=grace):
            state = tables.state(product_id)
            if state is None:
                self.parked.update(partition, product_id, None)
                continue
            old, rest = expire(state, now=now, grace_s=grace)
            for item in old:
                error = UnknownProductError(
                    f"FeedbackEvent: product {product_id!r} is unknown to the feedback app: no "
                    "product.created/updated or product.categorized event was seen for it "
                    f"within {grace:g} s (PRODCAT_FEEDBACK_UNKNOWN_GRACE_S) (at $.product_id)",
                    field="$.product_id",
                )
                await self.publisher.dead_letter(error, item)
                self.metrics.parked_expired.inc()
            if old:
                if rest.known() or rest.pending:
                    tables.save(product_id, rest, partition)
                else:
                    tables.delete(product_id)
            self.parked.update(partition, product_id, rest)

    def _index_parked(self, partition: int) -> None:
        """Index the parked feedback of every assigned partition not indexed yet (one scan)."""
        wanted = {partition}
        wanted |= {p for p in self.assigned() if not self.parked.indexed(p)}
        self.parked.rebuild(wanted, self.tables.parked_states())

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
        tables = self.tables
        effect = decide(state, event, self.policy)
        override = effect.override
        if override is not None:
            with self.publisher.overriding(event.product_id):
                shown = await self.publisher.override(event, effect.state, override)
                tables.record_feedback(partition, state, effect)
                tables.save(event.product_id, _shown(effect.state, override, shown), partition)
        elif effect.outcome != "duplicate":
            tables.record_feedback(partition, state, effect)
            tables.save(event.product_id, effect.state, partition)
        elif save_unchanged:
            tables.save(event.product_id, state, partition)
        self.metrics.feedback.labels(event.source, event.action, effect.outcome).inc()
        if effect.override is not None:
            latency = self.clock() - event.occurred_at.timestamp()
            self.metrics.override_latency.observe(max(latency, 0.0))


def _shown(state: ProductState, override: OverrideState, where: tuple[int, int]) -> ProductState:
    """``state`` with ``override`` in effect, last shown at ``where``."""
    return msgspec.structs.replace(state, override=msgspec.structs.replace(override, shown=where))
