"""``product.categorized.v1`` gained ``standard_category`` and ``google_product_category``
within v1: both directions stay compatible.

``CategorizedBefore`` is the Struct as it was before the two fields (an old consumer's
reader). The checks: it is exactly the file minus the two properties (so it *is* the old
contract); old events (without the fields) validate against today's file and decode with
today's Struct; today's events, with the fields set, decode with the old Struct to the same
values; the new fields are optional with a null default.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import msgspec

from tests.unit.core.test_schemas import EXAMPLES, SCHEMAS, drift, validator
from workers.core.codec import Codec
from workers.core.events import (
    Alternative,
    CategorizedEvent,
    CategoryPath,
    GoogleCategory,
    HexDigest,
    Id,
    ModelVersion,
    Probability,
    Reason,
    StandardCategory,
    Timestamp,
)

NEW_FIELDS = ("standard_category", "google_product_category")
CODEC = Codec()


class CategorizedBefore(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """``CategorizedEvent`` before the standard taxonomy fields (an old consumer)."""

    event_type: Literal["product.categorized"]
    event_id: Id
    product_id: Id
    category_id: Id
    category_path: CategoryPath
    confidence: Probability
    alternatives: Annotated[list[Alternative], msgspec.Meta(max_length=20)]
    abstained: bool
    needs_review: bool
    model_version: ModelVersion
    source: Literal["model", "cache", "override"]
    causation_id: Id
    input_hash: HexDigest
    event_time: Timestamp
    classified_at: Timestamp
    review_reason: Reason | None = None


def _file_before() -> dict[str, Any]:
    schema = copy.deepcopy(SCHEMAS["product.categorized.v1"])
    for name in NEW_FIELDS:
        del schema["properties"][name]
        del schema["$defs"][name]
    return schema


def _old_event() -> dict[str, Any]:
    return {k: v for k, v in EXAMPLES["product.categorized.v1"].items() if k not in NEW_FIELDS}


def test_the_old_struct_is_the_file_without_the_new_fields() -> None:
    assert drift(CategorizedBefore, [_file_before()]) == []
    assert drift(CategorizedEvent, [SCHEMAS["product.categorized.v1"]]) == []


def test_the_new_fields_are_optional_and_default_to_null() -> None:
    schema = SCHEMAS["product.categorized.v1"]
    assert not set(NEW_FIELDS) & set(schema["required"])
    assert set(schema["required"]) == set(_file_before()["required"])
    for name in NEW_FIELDS:
        assert schema["properties"][name]["default"] is None
    event = CODEC.decode(json.dumps(_old_event()).encode(), CategorizedEvent)
    assert event.standard_category is None and event.google_product_category is None


def test_old_events_validate_and_decode_today() -> None:
    old = _old_event()
    assert validator("product.categorized.v1").is_valid(old)
    today = CODEC.decode(json.dumps(old).encode(), CategorizedEvent)
    before = CODEC.decode(json.dumps(old).encode(), CategorizedBefore)
    assert msgspec.to_builtins(today) == {
        **msgspec.to_builtins(before),
        "standard_category": None,
        "google_product_category": None,
    }


def test_new_events_decode_with_the_old_struct() -> None:
    event = CategorizedEvent(
        event_type="product.categorized",
        event_id="e" * 32,
        product_id="p-1",
        category_id="c-1",
        category_path=["Electronics", "Phones"],
        confidence=0.9,
        alternatives=[],
        abstained=False,
        needs_review=False,
        standard_category=StandardCategory(
            taxonomy="shopify",
            version="2025-01-unstable",
            id="gid://shopify/TaxonomyCategory/el-4-8-5",
            path=["Electronics", "Communications", "Telephony", "Mobile & Smart Phones"],
            match="auto",
        ),
        google_product_category=GoogleCategory(
            id="267", path=["Electronics", "Communications", "Telephony", "Mobile Phones"]
        ),
        model_version="v1.shopify-0a1b2c3d",
        source="model",
        causation_id="in-1",
        input_hash="0" * 64,
        event_time=datetime(2024, 6, 14, tzinfo=UTC),
        classified_at=datetime(2024, 6, 14, tzinfo=UTC),
    )
    encoded = CODEC.encode(event)
    assert validator("product.categorized.v1").is_valid(json.loads(encoded))
    old = CODEC.decode(encoded, CategorizedBefore)  # the tolerant reader ignores the new fields
    current = msgspec.to_builtins(event)
    for name in NEW_FIELDS:
        del current[name]
    assert msgspec.to_builtins(old) == current
    # A strict validator of the old contract would refuse it: that is why producers are
    # the ones that validate against the file, and consumers read tolerantly.
    from jsonschema import Draft202012Validator

    assert not Draft202012Validator(_file_before()).is_valid(json.loads(encoded))
