"""workers.core.codec: examples, round trips, and errors that name the field."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

from tests.unit.core.examples import CREATED, UPDATED, example, payload
from workers.core.codec import Codec
from workers.core.errors import InvalidEventError, PayloadTooLargeError
from workers.core.events import (
    EVENT_SCHEMAS,
    MODEL_LIVE_KEY,
    Alternative,
    CategorizedEvent,
    FeedbackEvent,
    LabelEvent,
    ModelLiveEvent,
    ModelPublishedEvent,
    ProductEvent,
    utc_now,
)


def rejected(
    codec: Codec, data: bytes | None, type_: type[Any] = ProductEvent
) -> InvalidEventError:
    with pytest.raises(InvalidEventError) as err:
        codec.decode(data, type_)
    return err.value


@pytest.mark.parametrize("name", sorted(EVENT_SCHEMAS))
def test_decodes_every_example(codec: Codec, name: str) -> None:
    event = codec.decode(payload(example(name)), EVENT_SCHEMAS[name])
    assert isinstance(event, EVENT_SCHEMAS[name])
    assert event.event_type == example(name)["event_type"]


def test_decode_product_reads_both_product_examples(codec: Codec) -> None:
    created = codec.decode_product(payload(CREATED))
    updated = codec.decode_product(payload(UPDATED))
    assert created.event_type == "product.created"
    assert created.currency == "INR"
    assert created.occurred_at == datetime(2024, 6, 14, 3, 51, 37, 512000, tzinfo=UTC)
    assert updated.event_type == "product.updated"
    assert updated.title == "Apple iPhone 6 (A1586) 16GB 金色 移动联通电信4G手机"
    assert updated.attributes["颜色"] == "金色"
    assert updated.seller_id is None


def test_defaults_fill_optional_fields(codec: Codec) -> None:
    minimal = {k: CREATED[k] for k in ("event_type", "event_id", "product_id", "title")}
    minimal["occurred_at"] = "2024-06-14T09:21:37Z"
    event = codec.decode_product(payload(minimal))
    assert (event.description, event.brand, event.attributes, event.image_urls) == ("", "", {}, [])
    assert (event.price, event.currency, event.locale, event.seller_id) == (None,) * 4


@pytest.mark.parametrize("name", sorted(EVENT_SCHEMAS))
def test_round_trip(codec: Codec, name: str) -> None:
    type_ = EVENT_SCHEMAS[name]
    event = codec.decode(payload(example(name)), type_)
    encoded = codec.encode(event)
    assert codec.decode(encoded, type_) == event
    assert codec.encode(codec.decode(encoded, type_)) == encoded
    assert set(json.loads(encoded)) == set(msgspec.structs.asdict(event))  # every field written


def test_round_trip_keeps_offsets_and_unicode(codec: Codec) -> None:
    event = codec.decode_product(payload(CREATED))
    again = codec.decode_product(codec.encode(event))
    assert again.occurred_at.utcoffset() == timedelta(hours=5, minutes=30)
    assert "金色".encode() in codec.encode(codec.decode_product(payload(UPDATED)))


def test_payload_at_the_limit_is_accepted(codec: Codec) -> None:
    data = payload(CREATED)
    assert (
        Codec(max_payload_bytes=len(data)).decode_product(data).product_id == CREATED["product_id"]
    )


@pytest.mark.parametrize("data", [None, b""])
def test_empty_payload(codec: Codec, data: bytes | None) -> None:
    for call in (codec.decode_product, lambda d: codec.decode(d, FeedbackEvent)):
        with pytest.raises(InvalidEventError, match="empty payload") as err:
            call(data)
        assert err.value.field == "$"


def test_oversized_payload_names_size_limit_and_setting() -> None:
    codec = Codec(max_payload_bytes=256)
    data = payload({**CREATED, "description": "x" * 300})
    with pytest.raises(PayloadTooLargeError) as err:
        codec.decode_product(data)
    message = str(err.value)
    assert f"{len(data)} bytes" in message
    assert "256" in message
    assert "PRODCAT_CLASSIFY_MAX_PAYLOAD_BYTES" in message
    assert err.value.field == "$"
    assert isinstance(err.value, InvalidEventError)
    with pytest.raises(PayloadTooLargeError):
        codec.decode(data, ProductEvent)


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"not json", "malformed"),
        (b"{", "truncated"),
        (payload(CREATED)[:-7], "truncated"),
        (payload(CREATED) + b"}", "trailing"),
        (b"[1, 2]", "Expected `object`, got `array`"),
        (b'"a string"', "Expected `object`"),
    ],
)
def test_malformed_json_is_a_whole_payload_error(codec: Codec, data: bytes, words: str) -> None:
    err = rejected(codec, data)
    assert err.field == "$"
    assert words in str(err)


def test_non_utf8_is_rejected_naming_utf8(codec: Codec) -> None:
    bad = payload(CREATED).replace(b"Aashirvaad", b"Aash\xffrvaad")
    bad_label = payload(example("category.label.v1")).replace(b"Aashirvaad", b"Aash\xffrvaad")
    for call, data in [
        (codec.decode_product, bad),
        (lambda d: codec.decode(d, LabelEvent), bad_label),
    ]:
        with pytest.raises(InvalidEventError, match="UTF-8") as err:
            call(data)
        assert err.value.field == "$"
    latin1 = "Café Coffee Day, 500 g".encode("latin-1")
    with pytest.raises(InvalidEventError, match="UTF-8"):
        codec.decode_product(payload(CREATED).replace(b"Aashirvaad", latin1))


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"title": None}, "$.title", "Expected `str`, got `null`"),
        ({"title": 42}, "$.title", "Expected `str`, got `int`"),
        ({"title": "   "}, "$.title", "must not be blank"),
        ({"title": "\u3000\t"}, "$.title", "must not be blank"),
        ({"title": "x" * 1001}, "$.title", "length <= 1000"),
        ({"event_id": ""}, "$.event_id", "length >= 1"),
        ({"product_id": 184223}, "$.product_id", "Expected `str`"),
        ({"event_type": "product.deleted"}, "$.event_type", "Invalid enum value"),
        ({"price": "265"}, "$.price", "Expected `float | null`"),
        ({"price": -1}, "$.price", ">= 0"),
        ({"currency": "inr"}, "$.currency", "regex"),
        ({"currency": "INR\n"}, "$.currency", "length <= 3"),
        ({"locale": "en_IN"}, "$.locale", "regex"),
        ({"attributes": {"weight": "5 kg", "color": 1}}, "$.attributes.color", "Expected `str`"),
        ({"attributes": {"pack size": 2}}, '$.attributes["pack size"]', "Expected `str`"),
        ({"attributes": ["weight"]}, "$.attributes", "Expected `object`"),
        ({"image_urls": ["a.jpg", None]}, "$.image_urls[1]", "Expected `str`"),
        ({"occurred_at": "2024-06-14T09:21:37"}, "$.occurred_at", "timezone"),
        ({"occurred_at": "14/06/2024"}, "$.occurred_at", "Invalid RFC3339"),
        ({"occurred_at": 1718337097}, "$.occurred_at", "Expected `datetime`"),
    ],
)
def test_wrong_values_name_the_field(
    codec: Codec, change: dict[str, Any], field: str, words: str
) -> None:
    err = rejected(codec, payload({**CREATED, **change}))
    assert err.field == field
    assert words in str(err)
    assert field in str(err)
    assert not isinstance(err, PayloadTooLargeError)


@pytest.mark.parametrize(
    "missing", ["event_type", "event_id", "product_id", "title", "occurred_at"]
)
def test_missing_required_field_is_named(codec: Codec, missing: str) -> None:
    doc = {k: v for k, v in CREATED.items() if k != missing}
    err = rejected(codec, payload(doc))
    assert err.field == f"$.{missing}"
    assert "required field is missing" in str(err)


def test_nested_errors_carry_the_full_path(codec: Codec) -> None:
    doc = example("product.categorized.v1")
    doc["alternatives"][1] = {"category_id": "x", "category_path": ["a"]}
    err = rejected(codec, payload(doc), CategorizedEvent)
    assert err.field == "$.alternatives[1].score"
    doc["alternatives"][1] = {"category_id": "x", "category_path": ["a", ""], "score": 0.1}
    assert (
        rejected(codec, payload(doc), CategorizedEvent).field
        == "$.alternatives[1].category_path[1]"
    )
    metrics = {**example("model.published.v1"), "metrics": {"weighted_f1": "0.87"}}
    assert rejected(codec, payload(metrics), ModelPublishedEvent).field == "$.metrics.weighted_f1"


@pytest.mark.parametrize("path", [None, "absent"])
def test_correct_without_category_path(codec: Codec, path: str | None) -> None:
    doc = {**example("category.feedback.v1"), "action": "correct", "category_path": None}
    if path == "absent":
        del doc["category_path"]
    err = rejected(codec, payload(doc), FeedbackEvent)
    assert err.field == "$.category_path"
    assert "correct" in str(err)


def test_feedback_without_category_path_is_fine_unless_correcting(codec: Codec) -> None:
    doc = {**example("category.feedback.v1"), "action": "reject", "category_path": None}
    assert codec.decode(payload(doc), FeedbackEvent).category_path is None
    with pytest.raises(InvalidEventError) as err:
        FeedbackEvent(
            event_type="category.feedback",
            event_id="e",
            product_id="p",
            action="correct",
            source="moderator",
            occurred_at=utc_now(),
        )
    assert err.value.field == "$.category_path"


def test_unknown_fields_are_ignored(codec: Codec) -> None:
    doc = {**CREATED, "gtin": "8901725181222", "nested": {"deep": [1, 2, {"x": None}]}}
    assert codec.decode_product(payload(doc)) == codec.decode_product(payload(CREATED))


def test_check_validates_python_built_events(codec: Codec) -> None:
    good = codec.decode(payload(example("product.categorized.v1")), CategorizedEvent)
    assert codec.check(good) == good
    bad = msgspec.structs.replace(good, confidence=1.5)  # constructors do not check Meta
    with pytest.raises(InvalidEventError) as err:
        codec.check(bad)
    assert err.value.field == "$.confidence"


def test_decode_any_struct_builds_and_reuses_a_decoder(codec: Codec) -> None:
    alt = b'{"category_id": "c1", "category_path": ["Grocery"], "score": 0.5}'
    assert codec.decode(alt, Alternative) == codec.decode(alt, Alternative)
    with pytest.raises(InvalidEventError) as err:
        codec.decode(b'{"category_id": "c1", "category_path": [], "score": 0.5}', Alternative)
    assert err.value.field == "$.category_path"


def test_decode_control_dispatches_on_the_key(codec: Codec) -> None:
    published = payload(example("model.published.v1"))
    live = payload(example("model.live.v1"))
    assert isinstance(codec.decode_control(b"version:2024.06.1", published), ModelPublishedEvent)
    assert isinstance(codec.decode_control(MODEL_LIVE_KEY, live), ModelLiveEvent)
    assert codec.decode_control(b"version:2024.06.1", None) is None  # tombstone
    with pytest.raises(InvalidEventError, match="unexpected key"):
        codec.decode_control(b"other", live)
    with pytest.raises(InvalidEventError) as err:
        codec.decode_control(MODEL_LIVE_KEY, published)
    assert err.value.field == "$.event_type"


class _Item(msgspec.Struct):
    title: str
    attributes: dict[str, str] = {}


class _Request(msgspec.Struct):
    items: list[_Item]


def test_a_dict_key_inside_a_list_keeps_the_list_index() -> None:
    """The key resolution of ``[...]`` keeps the indexes before it (``$.items[1].attributes.x``),
    as in an HTTP request holding several products."""
    body = b'{"items":[{"title":"a"},{"title":"b","attributes":{"ok":"1","size":2}}]}'
    with pytest.raises(InvalidEventError) as caught:
        Codec().decode(body, _Request)
    assert caught.value.field == "$.items[1].attributes.size"
