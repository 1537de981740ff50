"""The categorized events the pipeline encodes are the schema's structs, byte for byte:
the hot path's shortcuts (events assembled from pre-encoded parts, decisions encoded once
and cached as such, the event id hashed from pre-encoded parts, review reasons from a
table) change nothing in the output."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest

from workers.classify.batch import Outcome
from workers.classify.cache import decode_cached, encode_cached
from workers.classify.categorized import DecisionEncoder, EventWriter
from workers.classify.metrics import ClassifyMetrics
from workers.classify.pipeline import BatchPipeline, review_reason
from workers.core.codec import Codec
from workers.core.events import Alternative, CategorizedEvent, ProductEvent, derive_event_id
from workers.core.overrides import Override
from workers.inference.standard import (
    STANDARD_FORMAT,
    MappedCategory,
    StandardMapping,
    StandardTable,
)
from workers.inference.taxonomy import Alternative as Scored
from workers.inference.taxonomy import Decision, Taxonomy
from workers.lifecycle.modelset import ModelSet

NOW = datetime(2026, 11, 29, 3, 4, 5, 678901, tzinfo=UTC)
VERSION = "bigbasket-20261129013611-fdf4f956"
SHAMPOO = ("Beauty & Hygiene", "Hair Care", "Shampoo & Conditioner")
OIL = ("Beauty & Hygiene", "Hair Care", "Hair Oil & Serum")
SALT = ("Foodgrains, Oil & Masala", "Salt, Sugar & Jaggery", "Salts")


class _Live:
    version = VERSION


def _pipeline() -> BatchPipeline:
    models: Any = ModelSet(live=_Live())  # type: ignore[arg-type]  # _encode reads only the version
    return BatchPipeline(models, Codec(1 << 20), ClassifyMetrics())


def _event(event_id: str, product_id: str) -> ProductEvent:
    return ProductEvent(
        event_type="product.updated",
        event_id=event_id,
        product_id=product_id,
        title="Dove Intense Repair Shampoo 340 ml",
        occurred_at=datetime(2026, 11, 28, 23, 59, 58, 1, tzinfo=UTC),
    )


def clamp(x: float) -> float:
    return 0.0 if x < 0.0 else 1.0 if x > 1.0 else x


def _reference(
    event: ProductEvent,
    answer: Decision,
    source: str,
    version: str,
    standard: StandardTable | None = None,
) -> tuple[bytes, bytes | None]:
    """The output as the struct, encoded by msgspec (the pre-shortcut code)."""
    codec = Codec(1 << 20)
    values = (None, None) if standard is None else standard.values(answer.path)
    value = codec.encode(
        CategorizedEvent(
            event_type="product.categorized",
            event_id=derive_event_id("product.categorized", event.event_id, version),
            product_id=event.product_id,
            category_id=answer.category_id,
            category_path=list(answer.path),
            confidence=clamp(answer.confidence),
            alternatives=[
                Alternative(
                    category_id=a.category_id, category_path=list(a.path), score=clamp(a.score)
                )
                for a in answer.alternatives
            ],
            abstained=answer.abstained,
            needs_review=answer.needs_review,
            standard_category=values[0],
            google_product_category=values[1],
            model_version=version,
            source=source,  # type: ignore[arg-type]
            causation_id=event.event_id,
            input_hash="0f" * 16,
            event_time=event.occurred_at,
            classified_at=NOW,
        )
    )
    reason = review_reason(answer)
    return value, None if reason is None else codec.encode_review(value, reason)


ALTS = (Scored("c-oil", OIL, 0.5), Scored("c-salt", SALT, 0.25), Scored("c-sh", SHAMPOO, 1e-07))
DECISIONS = [
    Decision("c-sh", SHAMPOO, 0.9999999, ALTS, False, False, 3),
    Decision("c-hair", SHAMPOO[:2], 0.71, ALTS, False, True, 3),  # backed off: reviewed
    Decision("c-bh", SHAMPOO[:1], 0.12, ALTS, True, True, 3),  # abstained
    Decision("c-sh", SHAMPOO, 1.0000001, (Scored("c-sh", SHAMPOO, -0.0),), False, False, 3),
]
IDS = [("evt-1", "sku-1"), ('q"\\\u2028\n', 'p"é\u0001'), ("产品-7", "商品 7")]


@pytest.mark.parametrize("decision", DECISIONS)
@pytest.mark.parametrize("ids", IDS)
@pytest.mark.parametrize("version", [VERSION, 'v"2'])
def test_model_and_cached_answers_encode_as_the_struct(
    decision: Decision, ids: tuple[str, str], version: str
) -> None:
    pipe = _pipeline()
    event = _event(*ids)
    encoded = DecisionEncoder().encode(decision)
    cached = decode_cached(encode_cached(encoded))
    assert cached == encoded
    for answer, source in ((encoded, "model"), (cached, "cache")):
        out = Outcome()
        pipe._encode(out, event, "0f" * 16, answer, source, EventWriter(version, NOW))
        assert (out.value, out.review) == _reference(event, decision, source, version)
        assert out.key == ids[1].encode()
        assert out.occurred_ms == 1_795_910_398_000


def test_override_is_not_reviewed_and_names_the_category_in_its_id() -> None:
    pipe = _pipeline()
    out = Outcome()
    event = _event("evt-9", "sku-9")
    override = Override("c-salt", SALT, "moderator")
    pipe._encode(out, event, "0f" * 16, override, "override", EventWriter(VERSION, NOW))
    decoded = msgspec.json.decode(out.value or b"", type=CategorizedEvent)
    assert decoded.source == "override" and decoded.review_reason is None and out.review is None
    assert decoded.event_id == derive_event_id(
        "product.categorized", "evt-9", VERSION, "override:c-salt"
    )


TAXONOMY = Taxonomy.from_unsorted([SHAMPOO, OIL, SALT])
MAPPING = StandardMapping(
    format=STANDARD_FORMAT,
    taxonomy="shopify",
    version="2025-01-unstable",
    google_version="2021-09-21",
    categories=[
        MappedCategory(
            category_path=list(SHAMPOO),
            id="gid://shopify/TaxonomyCategory/hb-3-10-13",
            path=["Health & Beauty", "Personal Care", "Hair Care", "Shampoo & Conditioner"],
            google_id="2441",
            google_path=["Health & Beauty", "Personal Care", "Hair Care", "Shampoo & Conditioner"],
            score=0.41,
            status="ok",
            reviewed=True,
        ),
        MappedCategory(
            category_path=list(SHAMPOO[:2]),
            id="gid://shopify/TaxonomyCategory/hb-3-10",
            path=["Health & Beauty", "Personal Care", "Hair Care"],
            google_id="486",
            google_path=["Health & Beauty", "Personal Care", "Hair Care"],
            score=0.3,
            status="ok",
        ),
        MappedCategory(
            category_path=list(SHAMPOO[:1]),
            id="gid://shopify/TaxonomyCategory/hb",
            path=["Health & Beauty"],
            score=0.1,
            status="low",
        ),
        MappedCategory(category_path=list(SALT), score=0.01, status="none"),
    ],
)


@pytest.mark.parametrize("decision", DECISIONS)
def test_mapped_answers_carry_their_standard_fields_as_the_struct(decision: Decision) -> None:
    """With a mapping, model and cached answers carry ``standard_category`` and
    ``google_product_category`` of their own category (leaf, backed-off node or abstained
    root), encoded as msgspec encodes the struct."""
    table = StandardTable(TAXONOMY, MAPPING)
    pipe = _pipeline()
    event = _event("evt-1", "sku-1")
    encoded = DecisionEncoder().encode(decision, table)
    cached = decode_cached(encode_cached(encoded))
    assert cached is not None
    for answer, source in ((encoded, "model"), (cached, "cache")):
        out = Outcome()
        pipe._encode(out, event, "0f" * 16, answer, source, EventWriter(VERSION, NOW), table)
        assert (out.value, out.review) == _reference(event, decision, source, VERSION, table)
    decoded = msgspec.json.decode(out.value or b"", type=CategorizedEvent)
    expected_match = {3: "reviewed", 2: "auto", 1: "low"}[len(decision.path)]
    assert decoded.standard_category is not None
    assert decoded.standard_category.match == expected_match
    assert (decoded.google_product_category is None) == (len(decision.path) == 1)


def test_an_unmatched_category_gets_null_fields_and_overrides_follow_the_mapping() -> None:
    table = StandardTable(TAXONOMY, MAPPING)
    pipe = _pipeline()
    out = Outcome()
    salt = Decision("c-salt", SALT, 0.9, ALTS, False, False, 2)
    pipe._encode(
        out, _event("e", "p"), "0f" * 16, DecisionEncoder().encode(salt, table), "model",
        EventWriter(VERSION, NOW), table,
    )  # fmt: skip
    decoded = msgspec.json.decode(out.value or b"", type=CategorizedEvent)
    assert decoded.standard_category is None and decoded.google_product_category is None
    assert b'"standard_category":null,"google_product_category":null' in (out.value or b"")
    pipe._encode(
        out, _event("e", "p"), "0f" * 16, Override("c-sh", SHAMPOO, "moderator"), "override",
        EventWriter(VERSION, NOW), table,
    )  # fmt: skip
    decoded = msgspec.json.decode(out.value or b"", type=CategorizedEvent)
    assert decoded.source == "override"
    assert decoded.standard_category is not None
    assert decoded.standard_category.id == "gid://shopify/TaxonomyCategory/hb-3-10-13"
    assert decoded.google_product_category is not None
    assert decoded.google_product_category.id == "2441"
