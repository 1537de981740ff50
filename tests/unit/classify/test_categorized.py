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
from workers.inference.taxonomy import Alternative as Scored
from workers.inference.taxonomy import Decision
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
    event: ProductEvent, answer: Decision, source: str, version: str
) -> tuple[bytes, bytes | None]:
    """The output as the struct, encoded by msgspec (the pre-shortcut code)."""
    codec = Codec(1 << 20)
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
