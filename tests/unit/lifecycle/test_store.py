"""workers.lifecycle.store: versions are stored verified, sealed and immutable."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from workers.core.errors import BundleError, ConfigError
from workers.inference.bundle import verify_manifest, write_manifest
from workers.inference.spec import FeaturizerSpec
from workers.lifecycle.store import (
    DirectoryStore,
    StoreUnavailableError,
    VersionConflictError,
    open_store,
)

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
