"""workers.inference.metadata: the typed metadata.json that training writes and serving reads."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest

from workers.core.errors import BundleError
from workers.inference.bundle import METADATA_FILE, read_metadata
from workers.inference.metadata import (
    BUNDLE_FORMAT,
    BundleMetadata,
    DataInfo,
    Evaluation,
    OnnxInfo,
    SplitInfo,
    decode_metadata,
    encode_metadata,
)
from workers.inference.spec import FeaturizerSpec
from workers.inference.taxonomy import Thresholds


def full_metadata() -> BundleMetadata:
    """Every section, as ``export.pipeline.run`` fills them."""
    return BundleMetadata(
        format=BUNDLE_FORMAT,
        version="bigbasket-20260101000000-abcdef12",
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        labels=[["Beverages", "Tea", "Green Tea"], ["Beverages", "Tea", "Tea Bags"]],
        featurizer=FeaturizerSpec().to_dict(),
        thresholds=Thresholds(leaf=0.4, by_depth={1: 0.5, 2: 1.01}).to_dict(),
        onnx=OnnxInfo(
            opset=17, inputs=["word_ids", "char_ids"], output="probs", parity_max_abs_diff=1e-7
        ),
        model={"chosen": "fasttext", "candidates": [{"architecture": "fasttext"}]},
        data=DataInfo(
            sources=["bigbasket"],
            labels_files=["labels.jsonl"],
            limit=4000,
            fingerprint="f" * 64,
            split=SplitInfo(
                method="sha256(seed, title_key)",
                group_key="title_key",
                seed=0,
                test_frac=0.2,
                val_frac=0.1,
                rows={"train": 7, "val": 1, "test": 2},
                row_fractions={"train": 0.7, "val": 0.1, "test": 0.2},
                groups={"train": 7, "val": 1, "test": 2},
                unseen_val_rows=0,
                unseen_test_rows=1,
                unseen_test_labels=1,
            ),
            rows={"train": 7, "val": 1, "test": 2},
            load_reports=[{"dataset": "bigbasket", "rows_read": 10}],
            leaf_counts={"Beverages > Tea > Green Tea": 4},
        ),
        packages={"prodcat": "0.1.0"},
        train_seconds=12.5,
        evaluation=Evaluation(
            test_rows=2,
            test_rows_with_unseen_label=1,
            ours={"n": 2, "weighted_f1": 0.5, "top3_accuracy": None},
            backoff={"leaf_coverage": 0.5},
            thresholds={"leaf": 0.4},
            model={"chosen": "fasttext"},
            baseline={"weighted_f1": 0.4},
        ),
    )


def test_round_trip_keeps_every_field() -> None:
    meta = full_metadata()
    raw = encode_metadata(meta)
    assert raw.endswith(b"\n") and b'\n  "version": ' in raw  # indented for people
    assert decode_metadata(raw) == meta
    # every field is written, defaults too: the file describes the bundle completely
    written = json.loads(raw)
    assert set(written) == set(BundleMetadata.__struct_fields__)
    assert set(written["data"]) == set(DataInfo.__struct_fields__)
    assert set(written["data"]["split"]) == set(SplitInfo.__struct_fields__)
    assert set(written["evaluation"]) == set(Evaluation.__struct_fields__)


def _write(tmp_path: Path, data: object) -> Path:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    (tmp_path / METADATA_FILE).write_bytes(raw)
    return tmp_path


def test_reader_ignores_fields_it_does_not_know(tmp_path: Path) -> None:
    data = msgspec.to_builtins(full_metadata())
    data["from_a_newer_prodcat"] = {"x": 1}
    assert read_metadata(_write(tmp_path, data)) == full_metadata()


@pytest.mark.parametrize(
    ("change", "pattern"),
    [
        ({"format": "prodcat-bundle/2", "labels": "changed shape"}, r"format 'prodcat-bundle/2'"),
        ({"version": None}, r"Expected `str`, got `null` - at `\$\.version`"),
        ({"created_at": "yesterday"}, r"at `\$\.created_at`"),
        ({"data": {"sources": ["x"]}}, r"missing required field `fingerprint` - at `\$\.data`"),
    ],
)
def test_a_bad_field_is_named(tmp_path: Path, change: dict[str, object], pattern: str) -> None:
    data = {**msgspec.to_builtins(full_metadata()), **change}
    with pytest.raises(BundleError, match=pattern):
        read_metadata(_write(tmp_path, data))


def test_missing_and_unparsable_files(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="missing; this is not a prodcat bundle"):
        read_metadata(tmp_path)
    with pytest.raises(BundleError, match="not valid JSON"):
        read_metadata(_write(tmp_path, b"{nope"))
