"""The feedback app's two faust tables, behind typed methods.

``products``: ``product_id`` -> :class:`~workers.feedback.state.ProductState` (JSON).
``quality``: partition-qualified keys -> :class:`~workers.feedback.quality.Counts`
(see :mod:`workers.feedback.quality` for the keys and why they carry the partition).

Both map bytes to bytes (faust's ``raw`` serializer): faust stores and changelogs exactly
what msgspec encoded. Call every method on the app's event loop (from the agent, or via
``run_coroutine_threadsafe``): faust tables are not thread-safe.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from typing import Any

import faust
import msgspec

from workers.core.events import CategorizedEvent
from workers.core.settings import FeedbackSettings
from workers.feedback.policy import Effect
from workers.feedback.quality import (
    Counts,
    QualitySnapshot,
    bucket_of,
    category_key,
    confusion_key,
    decode_counts,
    encode_counts,
    summarize,
    window_key,
)
from workers.feedback.state import Prediction, ProductState, decode_state, encode_state

__all__ = ["RAW", "FeedbackTables"]

RAW: dict[str, Any] = {  # bytes in, bytes out: for tables and topics
    "key_type": bytes,
    "value_type": bytes,
    "key_serializer": "raw",
    "value_serializer": "raw",
}


class FeedbackTables:
    """The ``products`` and ``quality`` tables of one faust app."""

    def __init__(self, app: Any, partitions: int, settings: FeedbackSettings) -> None:
        schema: Any = faust.Schema(**RAW)
        self.settings = settings
        self.products: Any = app.Table(
            "products",
            partitions=partitions,
            key_type=bytes,
            value_type=bytes,
            schema=schema,
            help="Per product: text, seller, prediction, override, feedback votes.",
        )
        self.quality: Any = app.Table(
            "quality",
            partitions=partitions,
            key_type=bytes,
            value_type=bytes,
            schema=schema,
            help="Acceptance and correction counts (workers.feedback.quality).",
        )

    # ------------------------------------------------------------------ products

    def state(self, product_id: str) -> ProductState | None:
        return decode_state(self.products.get(product_id.encode()))

    def save(self, product_id: str, state: ProductState, partition: int) -> None:
        """Write a product's state while processing an event of ``partition`` (recorded in
        the state: the table partition its key belongs to)."""
        if state.partition != partition:
            state = msgspec.structs.replace(state, partition=partition)
        self.products[product_id.encode()] = encode_state(state)

    def delete(self, product_id: str) -> None:
        key = product_id.encode()
        if key in self.products:
            del self.products[key]  # a tombstone in the changelog

    def product_keys(self) -> list[bytes]:
        """A snapshot of the ``products`` keys (the table may change while it is used)."""
        return list(self.products.keys())

    def with_override(self, keys: Sequence[bytes], partitions: Collection[int]) -> list[str]:
        """The product ids among ``keys`` whose state holds an override and belongs to one of
        ``partitions`` (by the partition recorded in the state; for a state recovered from
        before that was recorded, the changelog partition faust's memory store noted)."""
        wanted = set(partitions)
        noted: Mapping[bytes, int] = getattr(self.products.data, "_key_partition", {})
        out: list[str] = []
        for key in keys:
            raw = self.products.get(key)
            if not raw or b'"override":{' not in raw:
                continue
            state = decode_state(raw)
            if state is None or state.override is None:
                continue
            partition = state.partition if state.partition is not None else noted.get(key)
            if partition is None or partition in wanted:
                out.append(key.decode())
        return out

    def parked_states(self) -> Iterator[tuple[str, ProductState]]:
        """(product_id, state) of every product with parked feedback (scans the table)."""
        for key, raw in self.products.items():
            if raw and b'"pending":[{' in raw:
                state = decode_state(raw)
                if state is not None and state.pending:
                    yield key.decode(), state

    # ------------------------------------------------------------------ quality

    def count(self, key: bytes, delta: Counts) -> None:
        self.quality[key] = encode_counts(decode_counts(self.quality.get(key)) + delta)

    def record_prediction(
        self, partition: int, state: ProductState, event: CategorizedEvent
    ) -> ProductState:
        """Fold a categorized event into the state; a new model answer counts as a prediction
        (an override's event, or the same answer again, does not)."""
        state = msgspec.structs.replace(state, input_hash=event.input_hash)
        path = tuple(event.category_path)
        old = state.prediction
        if event.source == "override" or (
            old is not None
            and old.model_version == event.model_version
            and old.category_path == path
        ):
            return state
        at = event.classified_at.timestamp()
        one = Counts(predictions=1)
        bucket = bucket_of(at, self.settings.acceptance_bucket_s)
        self.count(window_key(partition, event.model_version, bucket), one)
        self.count(category_key(partition, event.model_version, path), one)
        prediction = Prediction(model_version=event.model_version, category_path=path, at=at)
        return msgspec.structs.replace(state, prediction=prediction)

    def record_feedback(self, partition: int, before: ProductState, effect: Effect) -> None:
        """Count what a feedback event did to the prediction it concerned."""
        version = effect.model_version
        prediction = before.prediction
        if version is None or prediction is None:
            return
        if effect.corrected is not None:
            bucket = bucket_of(prediction.at, self.settings.acceptance_bucket_s)
            one = Counts(corrections=1)
            self.count(window_key(partition, version, bucket), one)
            self.count(category_key(partition, version, effect.corrected), one)
            if effect.corrected_to is not None:
                self.count(confusion_key(partition, effect.corrected, effect.corrected_to), one)
        if effect.accepted is not None:
            self.count(category_key(partition, version, effect.accepted), Counts(accepts=1))

    def summarize(self, *, now: float, partitions: Collection[int]) -> QualitySnapshot:
        return summarize(
            list(self.quality.items()),
            now=now,
            bucket_s=self.settings.acceptance_bucket_s,
            window_s=self.settings.acceptance_window_s,
            partitions=partitions,
        )

    def sizes(self) -> dict[str, int]:
        return {"products": len(self.products), "quality": len(self.quality)}
