"""The demo's corrections are valid category.feedback events."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from jsonschema import Draft202012Validator

from export.data.datasets import load_dataset
from workers.core.codec import Codec
from workers.core.events import FeedbackEvent
from workers.demo.feedback import Correction, feedback_events

SCHEMA = Path(__file__).resolve().parents[3] / "schemas" / "category.feedback.v1.schema.json"


def _corrections(data_dir: Path) -> list[Correction]:
    """Real products, 'corrected' from the root of another product's path to their own."""
    out: list[Correction] = []
    for name in ("bigbasket", "cn_ecommerce_products"):
        examples, _ = load_dataset(name, data_dir, limit=3)
        for e, other in zip(examples, examples[1:] + examples[:1], strict=True):
            out.append(Correction(e.product_id, e.title, other.path[:1], e.path, "demo-1"))
    return out


def test_feedback_events_follow_the_schema(data_dir: Path) -> None:
    corrections = _corrections(data_dir)
    now = datetime(2026, 11, 29, 2, 30, tzinfo=UTC)
    events = feedback_events(corrections, now)
    validator = Draft202012Validator(json.loads(SCHEMA.read_text()))
    codec = Codec()
    assert len({e.event_id for e in events}) == len(events)
    for event, fix in zip(events, corrections, strict=True):
        raw = codec.encode(event)
        assert not list(validator.iter_errors(json.loads(raw))), raw
        back = codec.decode(raw, FeedbackEvent)
        assert back.action == "correct"
        assert back.source == "moderator"
        assert tuple(back.category_path or ()) == fix.right
        assert tuple(back.rejected_category_path or ()) == fix.wrong
        assert back.product_id == fix.product_id
        assert back.occurred_at == now
