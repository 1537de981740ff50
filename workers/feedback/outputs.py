"""What an override publishes: the Redis value, the corrected categorized event, the label.

Pure builders; ids are deterministic (derived from the feedback event), so a feedback event
handled twice yields the same records (``schemas/README.md``, identity and causation).
"""

from __future__ import annotations

from datetime import UTC, datetime

from workers.core.categories import category_id
from workers.core.events import (
    CategorizedEvent,
    FeedbackEvent,
    LabelEvent,
    derive_event_id,
    override_categorized,
)
from workers.core.overrides import encode_override
from workers.feedback.state import OverrideState, StoredText

__all__ = ["label_event", "override_event", "override_value"]


def override_value(override: OverrideState) -> bytes:
    """JSON for ``{prefix}:override:{product_id}``, from the override as the table keeps it
    (so a live write and a restore write the same value)."""
    return encode_override(
        override.category_path,
        source=override.source,
        feedback_event_id=override.feedback_event_id,
        occurred_at=datetime.fromtimestamp(override.at, UTC).isoformat(),
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
    return override_categorized(
        causation_id=event.event_id,
        product_id=event.product_id,
        category_id=category_id(override.category_path),
        category_path=override.category_path,
        model_version=model_version,
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
