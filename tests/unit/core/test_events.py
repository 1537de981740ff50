"""workers.core.events: message keys, event times, derived ids, the text of a product."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from tests.unit.core.examples import CREATED, example, payload
from workers.core.codec import Codec
from workers.core.events import (
    EVENT_SCHEMAS,
    LabelEvent,
    ModelDecisionEvent,
    ModelLiveEvent,
    ModelPublishedEvent,
    ProductEvent,
    decision_key,
    derive_event_id,
    event_time,
    event_time_ms,
    message_key,
    model_version_key,
    utc_now,
)
from workers.core.product import ProductText


def test_message_keys(codec: Codec) -> None:
    product = codec.decode_product(payload(CREATED))
    assert message_key(product) == b"IN-GROC-000184223"
    published = codec.decode(payload(example("model.published.v1")), ModelPublishedEvent)
    assert message_key(published) == b"version:2024.06.1" == model_version_key("2024.06.1")
    live = codec.decode(payload(example("model.live.v1")), ModelLiveEvent)
    assert message_key(live) == b"live"
    decision = codec.decode(payload(example("model.decision.v1")), ModelDecisionEvent)
    assert message_key(decision) == b"decision:2024.06.2" == decision_key("2024.06.2")
    label = codec.decode(payload(example("category.label.v1")), LabelEvent)
    assert message_key(label) == product.product_id.encode()


@pytest.mark.parametrize(
    ("name", "field"),
    [
        ("product.created.v1", "occurred_at"),
        ("product.categorized.v1", "event_time"),
        ("category.feedback.v1", "occurred_at"),
        ("category.label.v1", "label_time"),
        ("model.published.v1", "created_at"),
        ("model.live.v1", "changed_at"),
        ("model.decision.v1", "decided_at"),
    ],
)
def test_event_time(codec: Codec, name: str, field: str) -> None:
    event = codec.decode(payload(example(name)), EVENT_SCHEMAS[name])
    expected = datetime.fromisoformat(example(name)[field].replace("Z", "+00:00"))
    assert event_time(event) == expected
    assert event_time_ms(event) == round(expected.timestamp() * 1000)


def test_event_time_ms_is_exact() -> None:
    when = datetime(2024, 6, 14, 9, 21, 37, 512999, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    event = ProductEvent(
        event_type="product.created", event_id="e", product_id="p", title="t", occurred_at=when
    )
    assert event_time_ms(event) == 1718337097512


def test_derive_event_id_is_deterministic_and_injective() -> None:
    a = derive_event_id("product.categorized", "evt-1", "2024.06.1")
    assert a == derive_event_id("product.categorized", "evt-1", "2024.06.1")
    assert len(a) == 32
    assert int(a, 16) >= 0
    assert a != derive_event_id("product.categorized", "evt-1", "2024.06.2")
    assert derive_event_id("a,b", "c") != derive_event_id("a", "b,c")
    categorized = example("product.categorized.v1")  # follows the recipe in schemas/README.md
    recipe = ("product.categorized", categorized["causation_id"], categorized["model_version"])
    assert categorized["event_id"] == derive_event_id(*recipe)


def test_product_text_is_the_same_for_serving_and_training(codec: Codec) -> None:
    product = codec.decode_product(payload(CREATED))
    label = codec.decode(payload(example("category.label.v1")), LabelEvent)
    assert ProductText.of(product) == ProductText.of(label)
    assert ProductText.of(product) == ProductText(
        title=CREATED["title"],
        brand=CREATED["brand"],
        description=CREATED["description"],
        attributes=CREATED["attributes"],
    )


def test_utc_now_is_aware() -> None:
    assert utc_now().utcoffset() == timedelta(0)
