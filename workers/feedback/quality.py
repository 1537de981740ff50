"""Online quality figures: acceptance rate per model version, corrections per category.

Counts live in the faust table ``quality`` (bytes key to :class:`Counts`), updated by the
same agent that updates the product states. A faust table's changelog record goes to the
partition of the event being processed, so a key must only ever be written from one input
partition: every key starts with that partition (``"<partition>\\x1f<kind>\\x1f..."``). The
figures of one app instance are the sum over the partitions it owns; Prometheus sums the
instances.

Key kinds:

``w``  ``(model_version, bucket)``: predictions made in that time bucket, and how many of
       them were corrected within the acceptance window.
``c``  ``(model_version, category path)``: predictions, corrections (within the window)
       and explicit accepts, cumulative.
``x``  ``(predicted path, corrected path)``: how often a prediction was corrected that way.

**Acceptance rate** of a model version: the share of its predictions *not* corrected within
``PRODCAT_FEEDBACK_ACCEPTANCE_WINDOW_S``. Only buckets whose window has fully passed count
(every prediction in them had its whole window to be corrected):
``1 - corrected / predictions`` over buckets ending at least one window before now. A
prediction is a ``product.categorized`` event from the model (``source`` model or cache)
whose category or model version differs from the product's previous prediction; repeats of
the same answer are the same prediction. It counts at its ``classified_at``.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import Final

import msgspec

from workers.core.categories import format_path

__all__ = [
    "Counts",
    "QualitySnapshot",
    "bucket_of",
    "category_key",
    "confusion_key",
    "decode_counts",
    "encode_counts",
    "matured",
    "parse_key",
    "summarize",
    "window_key",
]

SEP: Final = "\x1f"


class Counts(msgspec.Struct, array_like=True, frozen=True, gc=False):
    """Counters of one quality key."""

    predictions: int = 0
    corrections: int = 0
    accepts: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            self.predictions + other.predictions,
            self.corrections + other.corrections,
            self.accepts + other.accepts,
        )


_ENCODER: Final = msgspec.msgpack.Encoder()
_DECODER: Final = msgspec.msgpack.Decoder(Counts)


def encode_counts(counts: Counts) -> bytes:
    return _ENCODER.encode(counts)


def decode_counts(raw: bytes | None) -> Counts:
    if not raw:
        return Counts()
    try:
        return _DECODER.decode(raw)
    except msgspec.DecodeError:
        return Counts()


def _key(partition: int, kind: str, *parts: str) -> bytes:
    return SEP.join((str(partition), kind, *parts)).encode()


def parse_key(raw_key: bytes) -> tuple[int, str, str, str] | None:
    """``(partition, kind, a, b)`` of a quality table key; None for a key of another shape."""
    parts = raw_key.decode("utf-8", "replace").split(SEP)
    if len(parts) != 4 or not parts[0].isdigit():
        return None
    return int(parts[0]), parts[1], parts[2], parts[3]


def bucket_of(at: float, bucket_s: float) -> int:
    """The time bucket of an epoch-seconds time."""
    return math.floor(at / bucket_s)


def matured(bucket: int, bucket_s: float, window_s: float, now: float) -> bool:
    """True once every prediction of ``bucket`` had its whole window to be corrected."""
    return (bucket + 1) * bucket_s + window_s <= now


def window_key(partition: int, model_version: str, bucket: int) -> bytes:
    return _key(partition, "w", model_version, str(bucket))


def category_key(partition: int, model_version: str, path: tuple[str, ...]) -> bytes:
    return _key(partition, "c", model_version, format_path(path))


def confusion_key(partition: int, predicted: tuple[str, ...], corrected: tuple[str, ...]) -> bytes:
    return _key(partition, "x", format_path(predicted), format_path(corrected))


@dataclass(slots=True)
class QualitySnapshot:
    """The quality figures of the partitions one instance owns, at one moment."""

    acceptance: dict[str, Counts] = field(default_factory=dict)
    """model version -> predictions and corrections of matured buckets."""
    pending: dict[str, Counts] = field(default_factory=dict)
    """model version -> the same for buckets still inside their window."""
    categories: dict[tuple[str, str], Counts] = field(default_factory=dict)
    """(model version, category path) -> cumulative counts."""
    confusions: list[tuple[tuple[str, str], int]] = field(default_factory=list)
    """The most frequent (predicted, corrected) pairs, most frequent first."""

    def acceptance_rate(self, model_version: str) -> float | None:
        counts = self.acceptance.get(model_version)
        if counts is None or counts.predictions == 0:
            return None
        return 1.0 - counts.corrections / counts.predictions


def summarize(
    items: Iterable[tuple[bytes, bytes]],
    *,
    now: float,
    bucket_s: float,
    window_s: float,
    partitions: Collection[int] | None = None,
    top_confusions: int = 20,
    since: float | None = None,
) -> QualitySnapshot:
    """Add up the ``quality`` table's entries (of ``partitions`` only, when given; with
    ``since``, only the time buckets that began at or after it)."""
    snap = QualitySnapshot()
    confusions: dict[tuple[str, str], int] = {}
    for raw_key, raw_value in items:
        parsed = parse_key(raw_key)
        if parsed is None:
            continue
        partition, kind, a, b = parsed
        if partitions is not None and partition not in partitions:
            continue
        counts = decode_counts(raw_value)
        if kind == "w":
            try:
                bucket = int(b)
            except ValueError:
                continue
            if since is not None and bucket * bucket_s < since:
                continue
            into = snap.acceptance if matured(bucket, bucket_s, window_s, now) else snap.pending
            into[a] = into.get(a, Counts()) + counts
        elif kind == "c":
            snap.categories[(a, b)] = snap.categories.get((a, b), Counts()) + counts
        elif kind == "x":
            confusions[(a, b)] = confusions.get((a, b), 0) + counts.corrections
    snap.confusions = heapq.nlargest(top_confusions, confusions.items(), key=lambda kv: kv[1])
    return snap
