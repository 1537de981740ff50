"""What the feedback app writes: overrides in Redis, categorized events, labels, dead letters.

:meth:`Publisher.override` writes ``{prefix}:override:{product_id}`` to Redis through the
:class:`~workers.feedback.redislink.RedisLink` (retried until Redis takes it: the classify
worker reads it on its next event for the product), then publishes the corrected
``product.categorized`` event (``source: override``) and, when the product text is known and
the path is a leaf of the live model, a ``category.label`` training row, and waits for the
broker to acknowledge both. :meth:`Publisher.reassert` answers a model answer that was given
without the override (Redis had lost it) with the override, as the worker would have. When
the broker refuses an output the app stops (``OutputError``) rather than skip the input: it
is redelivered after a restart. Every output has a deterministic id, so a repeat is harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import Any, Final

from workers.core.categories import category_id, format_path
from workers.core.codec import Codec
from workers.core.errors import ProdcatError
from workers.core.events import (
    CategorizedEvent,
    FeedbackEvent,
    derive_event_id,
    override_categorized,
    utc_now,
)
from workers.core.product import ProductText
from workers.core.settings import Settings
from workers.feedback.live import LiveModel
from workers.feedback.metrics import FeedbackMetrics
from workers.feedback.outputs import label_event, override_event, override_value
from workers.feedback.redislink import RedisLink
from workers.feedback.state import OverrideState, ParkedFeedback, ProductState
from workers.kafka.deadletter import dead_letter_record, log_dead_letter

__all__ = ["OutputError", "Publisher"]

log = logging.getLogger(__name__)

SEND_TIMEOUT_S: Final = 60.0


class OutputError(ProdcatError):
    """The broker did not acknowledge an output; the app stops so the input is redelivered."""


class Publisher:
    """The app's outputs (see the module docstring). ``out`` maps topic names to the faust
    topics it sends to; ``on_failure`` is told when the broker refuses an output."""

    def __init__(
        self,
        settings: Settings,
        *,
        model: LiveModel,
        link: RedisLink,
        out: Mapping[str, Any],
        metrics: FeedbackMetrics,
        codec: Codec,
        worker: str,
        on_failure: Callable[[BaseException], None],
    ) -> None:
        self.settings = settings
        self.model = model
        self.link = link
        self.out = out
        self.metrics = metrics
        self.codec = codec
        self.worker = worker
        self.on_failure = on_failure

    def overriding(self, product_id: str) -> contextlib.AbstractContextManager[None]:
        """Wrap an override's write and the table update that records it (see
        :meth:`RedisLink.writing`)."""
        return self.link.writing(product_id)

    async def override(
        self, event: FeedbackEvent, state: ProductState, override: OverrideState
    ) -> tuple[int, int]:
        """Write the override and publish its outputs; returns the (partition, offset) of
        the corrected categorized event."""
        await self.link.write_override(event.product_id, override_value(override))
        version = state.prediction.model_version if state.prediction else self.model.version
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
        pending = [await self.out[t.categorized].send(key=kafka_key, value=encode(categorized))]
        self.metrics.overrides.labels(override.source).inc()
        new = override.category_path not in self.model.nodes
        if new:
            self.metrics.new_categories.labels(override.source).inc()
        if state.text is None:
            self.metrics.labels_skipped.labels("no_product_text").inc()
        elif override.category_path not in self.model.leaves and not new:
            self.metrics.labels_skipped.labels("not_a_leaf").inc()
        else:  # a leaf, or a new category (a leaf of the next model)
            label = label_event(event, override, state.text)
            pending.append(await self.out[t.labels].send(key=kafka_key, value=encode(label)))
            self.metrics.labels.labels(override.source).inc()
        shown = await self._acknowledged(pending, "the override's outputs")
        log.info(
            "override %s -> %s (%s, feedback %s)",
            event.product_id,
            format_path(override.category_path),
            override.source,
            event.event_id,
        )
        return shown

    async def reassert(self, answer: CategorizedEvent, override: OverrideState) -> tuple[int, int]:
        """The worker answered ``answer`` without the product's override: write the override
        again and publish the answer the worker would have given with it (same id rule);
        returns its (partition, offset)."""
        await self.link.write_override(answer.product_id, override_value(override))
        fixed = override_categorized(
            causation_id=answer.causation_id,
            product_id=answer.product_id,
            category_id=category_id(override.category_path),
            category_path=override.category_path,
            model_version=answer.model_version,
            input_hash=answer.input_hash,
            event_time=answer.event_time,
            classified_at=utc_now(),
        )
        out = self.out[self.settings.topics.categorized]
        future = await out.send(key=answer.product_id.encode(), value=self.codec.encode(fixed))
        shown = await self._acknowledged([future], "a re-published override answer")
        self.metrics.overrides_reasserted.inc()
        log.info(
            "override of %s re-asserted: the worker answered %s (%s) without it",
            answer.product_id,
            answer.causation_id,
            answer.source,
        )
        return shown

    def _input_hash(self, product_id: str, state: ProductState) -> str:
        if state.input_hash:
            return state.input_hash
        if state.text is not None:
            return self.model.featurizer.content_hash(ProductText.of(state.text))
        return derive_event_id("product", product_id)

    async def _acknowledged(self, futures: list[Any], what: str) -> tuple[int, int]:
        """Wait for the broker's acknowledgements; returns the first output's (partition,
        offset). When it refuses or does not answer, the
        event cannot be completed: stop the app (exit 1) rather than skip it; after a restart
        it is redelivered from the last committed offset."""
        try:
            acks = await asyncio.wait_for(asyncio.gather(*futures), SEND_TIMEOUT_S)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.on_failure(exc)
            raise OutputError(f"publishing {what} failed: {exc!r}") from exc
        first = acks[0]
        return int(first.partition), int(first.offset)

    async def dead_letter(self, error: BaseException, source: ParkedFeedback) -> None:
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
            worker=self.worker,
        )
        log_dead_letter(error, source.topic, source.partition, source.offset)
        out = self.out[self.settings.topics.dead_letter]
        future = await out.send(key=record.key, value=record.value, headers=record.headers)
        await self._acknowledged([future], "a dead letter")
        self.metrics.dead_lettered.labels(source.topic, record.error_class).inc()
