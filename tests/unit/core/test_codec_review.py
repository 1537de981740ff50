"""``Codec.encode_review`` gives the bytes of encoding the review copy in full, on events
built from real catalog rows, and those bytes are valid ``product.categorized.v1``."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import jsonschema
import msgspec
import pytest

from export.data.datasets import load_dataset
from workers.core.categories import category_id
from workers.core.codec import Codec
from workers.core.events import Alternative, CategorizedEvent, derive_event_id

CODEC = Codec()
REASONS = [
    "abstained: no category level cleared its confidence threshold",
    "backed off to a depth-2 category: the best leaf scored below the leaf threshold",
    'quote " backslash \\ newline \n tab \t and non-ASCII: 鸿星尔克 café \u2028',
]


def real_events(data_dir: Path) -> list[CategorizedEvent]:
    events = []
    when = datetime(2026, 11, 29, 2, 30, 1, 123456, tzinfo=UTC)
    india = timezone(timedelta(hours=5, minutes=30))
    for name in ("bigbasket", "cn_ecommerce_products", "myntra_styles"):
        examples, _ = load_dataset(name, data_dir, limit=60)
        for i, e in enumerate(examples):
            alts = [
                Alternative(category_id=category_id(e.path), category_path=list(e.path), score=s)
                for s in (0.61, 1e-7, 0.0)[: 1 + i % 3]
            ]
            events.append(
                CategorizedEvent(
                    event_type="product.categorized",
                    event_id=derive_event_id("product.categorized", e.product_id, "v1"),
                    product_id=e.product_id,
                    category_id=category_id(e.path[:2]),
                    category_path=list(e.path[:2]),
                    confidence=(i % 7) / 7,
                    alternatives=alts,
                    abstained=i % 2 == 0,
                    needs_review=True,
                    model_version="bigbasket-20261129013611-fdf4f956",
                    source="cache" if i % 3 else "model",
                    causation_id=f'{e.product_id}"/{e.title[:20]}',
                    input_hash="0f" * 16,
                    event_time=when.astimezone(india) if i % 2 else when,
                    classified_at=when + timedelta(milliseconds=i),
                )
            )
    return events


def test_encode_review_equals_encoding_the_copy(data_dir: Path, repo_root: Path) -> None:
    schema = json.loads((repo_root / "schemas" / "product.categorized.v1.schema.json").read_text())
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    events = real_events(data_dir)
    assert len(events) == 180
    for i, event in enumerate(events):
        reason = REASONS[i % len(REASONS)]
        fast = CODEC.encode_review(CODEC.encode(event), reason)
        assert fast == CODEC.encode(msgspec.structs.replace(event, review_reason=reason))
        validator.validate(json.loads(fast))
        assert CODEC.decode(fast, CategorizedEvent).review_reason == reason


def test_encode_review_refuses_other_bytes(data_dir: Path) -> None:
    event = real_events(data_dir)[0]
    copy = CODEC.encode(msgspec.structs.replace(event, review_reason="already set"))
    with pytest.raises(ValueError, match="CategorizedEvent"):
        CODEC.encode_review(copy, "again")
    with pytest.raises(ValueError, match="CategorizedEvent"):
        CODEC.encode_review(b'{"x":null}', "reason")
