"""workers.lifecycle.gate: the stored figures are compared only on the same split."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest

from workers.inference.bundle import Bundle
from workers.inference.metadata import BUNDLE_FORMAT, BundleMetadata
from workers.inference.spec import FeaturizerSpec
from workers.inference.taxonomy import Taxonomy, Thresholds
from workers.lifecycle.gate import GateRefusedError, GateResult, judge

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
