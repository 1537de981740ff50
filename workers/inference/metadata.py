"""``metadata.json``, the bundle's description, as typed msgspec Structs.

Training writes it (``export.pipeline``) and serving, the model lifecycle and the tools
read it (:func:`workers.inference.bundle.load_bundle`), through these Structs only: no
string keys on either side. ``tests/unit/inference/test_metadata.py`` round-trips the
metadata of a bundle the test suite trained and fails when a field is written that the
Structs do not know (drift).

Reader policy, as for events: decoding ignores fields it does not know, so an older
prodcat can still serve a bundle written by a newer one that added a field.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final

import msgspec

__all__ = [
    "BUNDLE_FORMAT",
    "BundleMetadata",
    "DataInfo",
    "Evaluation",
    "OnnxInfo",
    "SplitInfo",
    "StandardInfo",
    "decode_metadata",
    "encode_metadata",
]

BUNDLE_FORMAT: Final = "prodcat-bundle/1"

Figures = dict[str, float | int | None]
"""Named evaluation figures (``weighted_f1``, ``accuracy``, ... ``None`` when undefined)."""


class SplitInfo(msgspec.Struct, kw_only=True, frozen=True):
    """How the rows were split (``export.data.splits.Split.describe``): the seed and
    fractions rebuild it; the rest describes it."""

    seed: int
    test_frac: float
    val_frac: float
    method: str = ""
    group_key: str = ""
    rows: dict[str, int] = {}
    row_fractions: dict[str, float] = {}
    groups: dict[str, int] = {}
    unseen_val_rows: int = 0
    unseen_test_rows: int = 0
    unseen_test_labels: int = 0


class DataInfo(msgspec.Struct, kw_only=True, frozen=True):
    """What the model was trained on: enough to rebuild its split
    (``prodcat heldout``) and to tell whether two bundles share a test split (the gate)."""

    sources: list[str]
    fingerprint: str
    split: SplitInfo
    labels_files: list[str] = []
    limit: int | None = None
    """``prodcat train --limit``: rows sampled per source (None: all of them)."""
    rows: dict[str, int] = {}
    load_reports: list[dict[str, Any]] = []
    leaf_counts: dict[str, int] = {}
    """Training rows per leaf (formatted path), largest first; every leaf in bundles trained
    since the drift metric (``workers.feedback.drift``), the 20 largest before."""


class OnnxInfo(msgspec.Struct, kw_only=True, frozen=True):
    """The exported graph: opset, input and output names, parity with the trained model."""

    opset: int
    inputs: list[str]
    output: str
    parity_max_abs_diff: float


class Evaluation(msgspec.Struct, kw_only=True, frozen=True):
    """The held-out evaluation of the exported bundle through the serving code
    (``export.evaluation.evaluate``): ``ours`` and ``baseline`` by figure name."""

    ours: Figures
    test_rows: int = 0
    test_rows_with_unseen_label: int = 0
    backoff: dict[str, float] = {}
    thresholds: dict[str, Any] = {}
    model: dict[str, Any] = {}
    baseline: Figures | None = None


class StandardInfo(msgspec.Struct, kw_only=True, frozen=True):
    """The bundle's mapping to a standard taxonomy (``standard.json``, written by
    ``prodcat taxonomy apply``): which taxonomy, its file's sha256, the version the bundle
    had before the mapping was attached, and how many categories are matched."""

    taxonomy: str
    version: str
    google_version: str | None = None
    sha256: str
    base_version: str
    categories: int
    matched: int
    reviewed: int = 0
    low: int = 0
    applied_at: datetime | None = None


class BundleMetadata(msgspec.Struct, kw_only=True, frozen=True):
    """``metadata.json``. ``featurizer`` and ``thresholds`` are the JSON forms of
    :class:`~workers.inference.spec.FeaturizerSpec` and
    :class:`~workers.inference.taxonomy.Thresholds` (parsed, with their own checks, by
    :func:`~workers.inference.bundle.load_bundle`); ``model`` describes the candidates
    training tried, in whatever form the model family has."""

    format: str
    version: Annotated[str, msgspec.Meta(min_length=1)]
    created_at: datetime
    labels: list[list[str]]
    featurizer: dict[str, Any]
    thresholds: dict[str, Any]
    onnx: OnnxInfo | None = None
    model: dict[str, Any] = {}
    data: DataInfo | None = None
    packages: dict[str, str] = {}
    train_seconds: float | None = None
    evaluation: Evaluation | None = None
    standard: StandardInfo | None = None


_DECODER: Final = msgspec.json.Decoder(BundleMetadata)


def encode_metadata(meta: BundleMetadata) -> bytes:
    """Indented UTF-8 JSON, a newline at the end."""
    return msgspec.json.format(msgspec.json.encode(meta), indent=2) + b"\n"


def decode_metadata(raw: bytes) -> BundleMetadata:
    """Raises ``msgspec.ValidationError``/``DecodeError`` naming the bad field."""
    return _DECODER.decode(raw)
