"""Model store, control-topic state and the promotion gate's arithmetic (no Kafka, no model)."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest

from workers.core.codec import Codec
from workers.core.errors import BundleError, ConfigError, InvalidEventError
from workers.core.events import ModelLiveEvent, ModelPublishedEvent, model_version_key
from workers.inference.bundle import Bundle, verify_manifest, write_manifest
from workers.inference.metadata import BUNDLE_FORMAT, BundleMetadata
from workers.inference.scores import weighted_f1
from workers.inference.spec import FeaturizerSpec
from workers.inference.taxonomy import Taxonomy, Thresholds
from workers.lifecycle.control import ControlState
from workers.lifecycle.gate import GateRefusedError, GateResult, judge
from workers.lifecycle.store import (
    DirectoryStore,
    StoreUnavailableError,
    VersionConflictError,
    open_store,
)
from workers.lifecycle.swap import Wanted

NOW = datetime(2026, 11, 29, 3, 0, tzinfo=UTC)


def _bundle_dir(root: Path, version: str, payload: bytes = b"onnx bytes") -> Path:
    """A bundle-shaped directory (manifest, metadata, model bytes): what the store handles."""
    root.mkdir(parents=True)
    meta = {
        "format": "prodcat-bundle/1",
        "version": version,
        "labels": [["Food", "Tea"], ["Food", "Coffee"]],
        "featurizer": FeaturizerSpec().to_dict(),
        "thresholds": {"leaf": 0.2, "by_depth": {"1": 0.3}},
        "created_at": NOW.isoformat(),
    }
    (root / "metadata.json").write_text(json.dumps(meta))
    (root / "model.onnx").write_bytes(payload)
    (root / "report").mkdir()
    (root / "report" / "report.md").write_text("# report\n")
    write_manifest(root)
    return root


def test_put_copies_verifies_and_seals_a_version(tmp_path: Path) -> None:
    src = _bundle_dir(tmp_path / "src", "v1")
    store = DirectoryStore(tmp_path / "store")
    stored = store.put(src)
    assert stored.version == "v1"
    assert stored.sha256 == verify_manifest(src)
    path = store.fetch("v1")
    assert path == tmp_path / "store" / "v1"
    assert verify_manifest(path) == stored.sha256
    assert not (path / "model.onnx").stat().st_mode & stat.S_IWUSR  # read-only
    assert store.versions() == ["v1"]
    assert not [p for p in (tmp_path / "store").iterdir() if p.name.startswith(".")]


def test_put_is_idempotent_and_refuses_other_bytes_under_a_published_version(
    tmp_path: Path,
) -> None:
    store = DirectoryStore(tmp_path / "store")
    first = store.put(_bundle_dir(tmp_path / "a", "v1"))
    assert store.put(_bundle_dir(tmp_path / "b", "v1")) == first  # same bytes: no-op
    with pytest.raises(VersionConflictError, match="immutable"):
        store.put(_bundle_dir(tmp_path / "c", "v1", payload=b"other weights"))
    assert verify_manifest(store.fetch("v1")) == first.sha256


def test_put_refuses_a_bundle_that_does_not_match_its_manifest(tmp_path: Path) -> None:
    src = _bundle_dir(tmp_path / "src", "v1")
    (src / "model.onnx").write_bytes(b"tampered")
    store = DirectoryStore(tmp_path / "store")
    with pytest.raises(BundleError, match=r"model.onnx: sha256"):
        store.put(src)
    assert store.versions() == []


def test_fetch_names_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(StoreUnavailableError, match="not-mounted"):
        DirectoryStore(tmp_path / "not-mounted").fetch("v1")
    (tmp_path / "store").mkdir()
    with pytest.raises(BundleError, match="no bundle for version v9"):
        DirectoryStore(tmp_path / "store").fetch("v9")


def test_open_store_refuses_schemes_without_an_implementation(tmp_path: Path) -> None:
    assert isinstance(open_store(tmp_path), DirectoryStore)
    with pytest.raises(ConfigError, match="s3://"):
        open_store("s3://bucket/models")


# --------------------------------------------------------------------------- control state


def _published(version: str, sha: str) -> ModelPublishedEvent:
    return ModelPublishedEvent(
        event_type="model.published",
        version=version,
        location=f"var/models/{version}",
        sha256=sha,
        metrics={"weighted_f1": 0.8},
        label_count=2,
        featurizer="hashed-ngrams/1",
        created_at=NOW,
    )


def _live(version: str, **extra: object) -> ModelLiveEvent:
    return ModelLiveEvent(
        event_type="model.live",
        version=version,
        reason="test",
        changed_at=NOW,
        **extra,  # type: ignore[arg-type]
    )


def test_control_state_folds_records_newest_live_wins_tombstones_retire() -> None:
    codec = Codec()
    state = ControlState()
    for event in (_published("v1", "a" * 64), _published("v2", "b" * 64)):
        state.apply(model_version_key(event.version), codec.encode(event), codec)
    state.apply(b"live", codec.encode(_live("v1")), codec)
    state.apply(b"live", codec.encode(_live("v2", canary_version="v1", canary_share=0.1)), codec)
    assert state.live_version == "v2"
    assert Wanted.from_state(state) == Wanted(
        live=("v2", "b" * 64), canary=("v1", "a" * 64), canary_share=0.1
    )
    state.apply(model_version_key("v1"), None, codec)  # retired
    assert sorted(state.published) == ["v2"]
    wanted = Wanted.from_state(state)
    assert wanted is not None and wanted.canary == ("v1", "")  # asked for, but unpublished
    with pytest.raises(InvalidEventError):
        state.apply(b"live", b'{"event_type": "model.live"}', codec)
    with pytest.raises(InvalidEventError):
        state.apply(b"other", b"{}", codec)


# --------------------------------------------------------------------------- gate


def test_weighted_f1_matches_scikit_learn() -> None:
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    truth = [("a",), ("a",), ("b",), ("b",), ("b",), ("c",), ("a", "x")]
    pred = [("a",), ("b",), ("b",), ("b",), ("c",), ("c",), ("d",)]
    labels = sorted(set(truth) | set(pred))
    index = {label: i for i, label in enumerate(labels)}
    expected = sklearn_metrics.f1_score(
        [index[t] for t in truth], [index[p] for p in pred], average="weighted"
    )
    assert weighted_f1(truth, pred) == pytest.approx(expected)
    assert weighted_f1(truth, truth) == 1.0


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


def test_cli_parses_the_lifecycle_commands() -> None:
    from workers.cli.main import build_parser

    parser = build_parser()
    args = parser.parse_args(["publish", "var/bundles/v2", "--live", "--holdout", "h.jsonl"])
    assert (args.bundle_dir, args.live, args.holdout) == (
        Path("var/bundles/v2"),
        True,
        Path("h.jsonl"),
    )
    args = parser.parse_args(["models", "promote", "v2", "--force", "--tolerance", "0.02"])
    assert (args.models_command, args.version, args.force, args.tolerance) == (
        "promote",
        "v2",
        True,
        0.02,
    )
    args = parser.parse_args(["models", "canary", "v3", "--share", "0.1"])
    assert (args.version, args.share, args.off) == ("v3", 0.1, False)
    assert parser.parse_args(["models", "rollback", "--to", "v1"]).to == "v1"
    assert parser.parse_args(["models", "shadow", "--off"]).off
    with pytest.raises(SystemExit):
        parser.parse_args(["models", "retire"])
