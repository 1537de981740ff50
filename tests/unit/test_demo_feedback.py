"""The demo's corrections: valid category.feedback events, and the feedback-app switch."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from export.datasets import load_dataset
from workers import cli
from workers.demo_feedback import Correction, feedback_app_implemented, feedback_events
from workers.events import Codec, FeedbackEvent

SCHEMA = Path(__file__).resolve().parents[2] / "schemas" / "category.feedback.v1.schema.json"


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


def _parser_with(handler: cli.Handler) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="prodcat")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("feedback").set_defaults(handler=handler)
    return parser


def test_the_switch_sees_the_stub_and_a_real_app(monkeypatch: pytest.MonkeyPatch) -> None:
    def real_app(args: argparse.Namespace, settings: object) -> int:
        return 0

    monkeypatch.setattr(cli, "build_parser", lambda: _parser_with(cli._not_yet("feedback")))
    assert feedback_app_implemented() is False
    monkeypatch.setattr(cli, "build_parser", lambda: _parser_with(real_app))
    assert feedback_app_implemented() is True


def test_a_feedback_app_with_required_arguments_counts_as_implemented(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def parser() -> argparse.ArgumentParser:
        p = _parser_with(cli._not_yet("feedback"))
        sub = p._subparsers._group_actions[0]  # type: ignore[union-attr]
        sub.choices["feedback"].add_argument("--app-id", required=True)
        return p

    monkeypatch.setattr(cli, "build_parser", parser)
    assert feedback_app_implemented() is True


def test_direct_overrides_are_what_the_worker_reads(data_dir: Path) -> None:
    from workers.cache import decode_override
    from workers.demo_feedback import _write_directly

    class Recorder:
        def __init__(self) -> None:
            self.values: dict[str, bytes] = {}

        def set(self, key: str, value: bytes) -> None:
            self.values[key] = value

    corrections = _corrections(data_dir)
    keys = [f"demo:override:{c.product_id}" for c in corrections]
    client = Recorder()
    _write_directly(client, keys, corrections)  # type: ignore[arg-type]
    for key, fix in zip(keys, corrections, strict=True):
        found = decode_override(client.values[key])
        assert found is not None
        assert found.path == fix.right
        assert found.source == "moderator"
