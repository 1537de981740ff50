"""What an override publishes: the Redis value, the corrected categorized event, the label.

Pure builders; ids are deterministic (derived from the feedback event), so a feedback event
handled twice yields the same records (``schemas/README.md``, identity and causation).
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

import msgspec

from workers.events import CategorizedEvent, FeedbackEvent, LabelEvent, derive_event_id
from workers.feedback.state import OverrideState, StoredText
from workers.taxonomy import category_id

__all__ = ["label_event", "override_event", "override_value"]


class _OverrideValue(msgspec.Struct, frozen=True, kw_only=True):
    """The Redis value :func:`workers.cache.decode_override` reads (extra fields are for people)."""

    category_path: list[str]
    category_id: str
    source: str
    feedback_event_id: str
    occurred_at: str


_JSON: Final = msgspec.json.Encoder()


def override_value(event: FeedbackEvent, override: OverrideState) -> bytes:
    """JSON for ``{prefix}:override:{product_id}``."""
    return _JSON.encode(
        _OverrideValue(
            category_path=list(override.category_path),
            category_id=category_id(override.category_path),
            source=override.source,
            feedback_event_id=event.event_id,
            occurred_at=event.occurred_at.isoformat(),
        )
    )


def override_event(
    event: FeedbackEvent,
    override: OverrideState,
    *,
    model_version: str,
    input_hash: str,
    now: datetime,
) -> CategorizedEvent:
    """The corrected ``product.categorized`` event (``source: override``), caused by the
    feedback event; its id follows the classify worker's rule for overrides."""
    cid = category_id(override.category_path)
    return CategorizedEvent(
        event_type="product.categorized",
        event_id=derive_event_id(
            "product.categorized", event.event_id, model_version, f"override:{cid}"
        ),
        product_id=event.product_id,
        category_id=cid,
        category_path=list(override.category_path),
        confidence=1.0,
        alternatives=[],
        abstained=False,
        needs_review=False,
        model_version=model_version,
        source="override",
        causation_id=event.event_id,
        input_hash=input_hash,
        event_time=event.occurred_at,
        classified_at=now,
    )


def label_event(event: FeedbackEvent, override: OverrideState, text: StoredText) -> LabelEvent:
    """The training row: the product's text and the corrected path, at the feedback's time."""
    return LabelEvent(
        event_type="category.label",
        event_id=derive_event_id("category.label", event.event_id),
        product_id=event.product_id,
        title=text.title,
        description=text.description,
        brand=text.brand,
        attributes=dict(text.attributes),
        category_path=list(override.category_path),
        source=event.source,
        label_time=event.occurred_at,
        feedback_event_id=event.event_id,
    )
