"""What the feedback app writes: overrides in Redis, categorized events, labels, dead letters.

:meth:`Publisher.override` writes ``{prefix}:override:{product_id}`` to Redis (retried
until it succeeds: the classify worker reads it on its next event for the product), then
publishes the corrected ``product.categorized`` event (``source: override``) and, when the
product text is known and the path is a leaf of the live model, a ``category.label``
training row, and waits for the broker to acknowledge both. When the broker refuses an
output the app stops (``OutputError``) rather than skip the input: it is redelivered after
a restart. Every output has a deterministic id, so a repeat is harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import Any, Final

import redis
import redis.asyncio as aioredis

from workers.core.categories import format_path
from workers.core.codec import Codec
from workers.core.errors import ProdcatError
from workers.core.events import FeedbackEvent, derive_event_id, utc_now
from workers.core.overrides import override_key
from workers.core.product import ProductText
from workers.core.settings import Settings
from workers.feedback.live import LiveModel
from workers.feedback.metrics import FeedbackMetrics
from workers.feedback.outputs import label_event, override_event, override_value
from workers.feedback.state import OverrideState, ParkedFeedback, ProductState
from workers.kafka.deadletter import dead_letter_record, log_dead_letter

__all__ = ["OutputError", "Publisher"]

log = logging.getLogger(__name__)

SEND_TIMEOUT_S: Final = 60.0
REDIS_BACKOFF_MAX_S: Final = 30.0


class OutputError(ProdcatError):
    """The broker did not acknowledge an output; the app stops so the input is redelivered."""


class Publisher:
    """The app's outputs (see the module docstring). ``out`` maps topic names to the faust
    topics it sends to; ``on_failure`` is told when the broker refuses an output, and
    ``on_redis`` whether Redis answers."""

    def __init__(
        self,
        settings: Settings,
        *,
        model: LiveModel,
        redis_client: aioredis.Redis,
        out: Mapping[str, Any],
        metrics: FeedbackMetrics,
        codec: Codec,
        stop_event: asyncio.Event,
        worker: str,
        on_failure: Callable[[BaseException], None],
        on_redis: Callable[[bool], None],
    ) -> None:
        self.settings = settings
        self.model = model
        self.redis = redis_client
        self.out = out
        self.metrics = metrics
        self.codec = codec
        self.stop_event = stop_event
        self.worker = worker
        self.on_failure = on_failure
        self.on_redis = on_redis

    async def override(
        self, event: FeedbackEvent, state: ProductState, override: OverrideState
    ) -> None:
        key = override_key(self.settings.redis.key_prefix, event.product_id)
        await self._redis_set(key, override_value(event, override))
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
        if state.text is None:
            self.metrics.labels_skipped.labels("no_product_text").inc()
        elif override.category_path not in self.model.leaves:
            self.metrics.labels_skipped.labels("not_a_leaf").inc()
        else:
            label = label_event(event, override, state.text)
            pending.append(await self.out[t.labels].send(key=kafka_key, value=encode(label)))
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
        if state.text is not None:
            return self.model.featurizer.content_hash(ProductText.of(state.text))
        return derive_event_id("product", product_id)

    async def _redis_set(self, key: str, value: bytes) -> None:
        """SET without expiry, retried with back-off until it succeeds or the app stops."""
        delay = 0.2
        while True:
            try:
                await self.redis.set(key, value)
                self.on_redis(True)
                return
            except (redis.RedisError, OSError) as exc:
                self.on_redis(False)
                self.metrics.redis_errors.inc()
                log.warning(
                    "writing override %s to Redis failed (%s); retry in %.1f s", key, exc, delay
                )
            if self.stop_event.is_set():
                raise asyncio.CancelledError  # not processed: redelivered after restart
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop_event.wait(), delay)
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
            self.on_failure(exc)
            raise OutputError(f"publishing {what} failed: {exc!r}") from exc

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
