"""workers.lifecycle.gate: the stored figures are compared only on the same split."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest

from workers.core.events import LabelEvent
from workers.core.records import RecordError
from workers.inference.bundle import Bundle
from workers.inference.metadata import BUNDLE_FORMAT, BundleMetadata
from workers.inference.spec import FeaturizerSpec
from workers.inference.taxonomy import Taxonomy, Thresholds
from workers.lifecycle.gate import (
    CorrectionsResult,
    GateRefusedError,
    GateResult,
    judge,
    read_recent_labels,
)

NOW = datetime(2026, 11, 29, 3, 0, tzinfo=UTC)


def _fake_bundle(version: str, figure: float | None, fingerprint: str = "f" * 64) -> Bundle:
    ours = {} if figure is None else {"weighted_f1": figure}
    return Bundle(
        root=Path(version),
        sha256="0" * 64,
        metadata=msgspec.convert(
            {
                "format": BUNDLE_FORMAT,
                "version": version,
                "created_at": NOW.isoformat(),
                "labels": [["Food", "Tea"]],
                "featurizer": FeaturizerSpec().to_dict(),
                "thresholds": {},
                "evaluation": {"ours": ours},
                "data": {
                    "sources": ["bigbasket"],
                    "fingerprint": fingerprint,
                    "split": {"seed": 0, "test_frac": 0.2, "val_frac": 0.1},
                },
            },
            BundleMetadata,
        ),
        featurizer=FeaturizerSpec(),
        taxonomy=Taxonomy([("Food", "Tea")]),
        thresholds=Thresholds(),
    )


def test_gate_compares_stored_figures_only_on_the_same_split() -> None:
    result = judge(_fake_bundle("new", 0.70), _fake_bundle("old", 0.75), tolerance=0.01)
    assert not result.passed
    assert result.drop == pytest.approx(0.05)
    assert "0.0500 below live old (0.7500)" in result.describe("new", "old")
    assert judge(_fake_bundle("new", 0.745), _fake_bundle("old", 0.75), tolerance=0.01).passed
    assert judge(_fake_bundle("new", 0.9), _fake_bundle("old", 0.75), tolerance=0.0).passed
    with pytest.raises(GateRefusedError, match="different held-out sets"):
        judge(_fake_bundle("new", 0.9), _fake_bundle("old", 0.7, "e" * 64), tolerance=0.01)
    with pytest.raises(GateRefusedError, match="no stored evaluation figure"):
        judge(_fake_bundle("new", None), _fake_bundle("old", 0.7), tolerance=0.01)


def test_gate_result_boundary_is_inclusive() -> None:
    assert GateResult("weighted_f1", 0.74, 0.75, "x", 0.01).passed
    assert not GateResult("weighted_f1", 0.7399, 0.75, "x", 0.01).passed


def _label(product_id: str, title: str, path: list[str], at: datetime) -> bytes:
    event = LabelEvent(
        event_type="category.label",
        event_id=f"label-{product_id}",
        product_id=product_id,
        title=title,
        category_path=path,
        source="moderator",
        label_time=at,
        feedback_event_id=f"fb-{product_id}",
    )
    return msgspec.json.encode(event)


def test_recent_labels_are_those_after_the_live_bundle(
    tmp_path: Path, products: list[tuple[str, str]]
) -> None:
    (a_id, a_title), (b_id, b_title) = products[0], products[1]
    dump = tmp_path / "labels.jsonl"
    earlier, later = NOW.replace(hour=1), NOW.replace(hour=5)
    dump.write_bytes(
        _label(a_id, a_title, ["Beverages", "Tea"], earlier)
        + b"\n\n"
        + _label(b_id, b_title, ["Snacks", "Namkeen"], later)
        + b"\n"
    )
    recent = read_recent_labels(dump, NOW)
    assert [t.title for t in recent.items] == [b_title]
    assert recent.truth == [("Snacks", "Namkeen")]
    assert len(read_recent_labels(dump, None).items) == 2
    broken = tmp_path / "broken.jsonl"
    broken.write_bytes(dump.read_bytes() + b'{"title": "no event"}\n')
    with pytest.raises(RecordError, match=r"broken.jsonl line 4: not a category.label event"):
        read_recent_labels(broken, None)


def test_corrections_gate_needs_most_of_the_live_models_mistakes_fixed() -> None:
    result = CorrectionsResult(rows=40, live_wrong=30, fixed=15, broken=2, min_share=0.5)
    assert result.passed and result.share == 0.5
    assert "30 wrong" in result.describe("v2", "v1") and "15 of those right" in result.describe(
        "v2", "v1"
    )
    assert not CorrectionsResult(40, 30, 14, 0, 0.5).passed
    assert CorrectionsResult(40, 0, 0, 3, 0.5).passed  # nothing the live model got wrong
    assert CorrectionsResult(0, 0, 0, 0, 0.5).describe("v2", "v1") == (
        "no recent corrections to check"
    )
