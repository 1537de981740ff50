"""``prodcat predict``: classify a CSV or JSONL file of products, write JSONL.

For back-filling an existing catalog. It reads the products file with the one reader
of products files (:func:`workers.core.records.read_products`, as training and the gate
do) in chunks, and each chunk goes through
:meth:`workers.inference.model.Classifier.classify`, the same call the classify worker
makes per batch.

Files are written whole or not at all (:func:`open_atomic`: a temporary name beside the
target, renamed on success), so a run that stops at a bad line leaves no partial output.
With ``skip_invalid`` a bad row is counted, kept for a file of skipped rows
(:class:`SkippedRows`, in the input's own format) and reading carries on.

When the bundle carries a standard taxonomy mapping (``prodcat taxonomy apply``), each
record also holds ``standard_category`` and ``google_product_category`` (null where the
category has none), and :class:`MerchantFeed` can write a Google Merchant Center
supplemental feed: ``id``, ``google_product_category`` (the Google category id) and
``product_type`` (the catalog's own category path) for every product.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import msgspec

from workers.core.product import ProductText
from workers.core.records import JSON_LINES_SUFFIXES, RecordError, csv_line, read_products
from workers.inference.model import Classifier
from workers.inference.taxonomy import Decision

__all__ = [
    "FEED_COLUMNS",
    "MerchantFeed",
    "SkippedRows",
    "count_lines",
    "decision_record",
    "open_atomic",
    "predict_file",
    "skipped_path",
]


FEED_COLUMNS = ("id", "google_product_category", "product_type")
"""A Merchant Center supplemental feed's columns (attribute names of the product data spec)."""


def decision_record(
    product_id: str, decision: Decision, version: str, classifier: Classifier | None = None
) -> dict[str, Any]:
    standard, google = (
        classifier.standard.values(decision.path) if classifier is not None else (None, None)
    )
    return {
        "product_id": product_id,
        "category_id": decision.category_id,
        "category_path": list(decision.path),
        "confidence": round(decision.confidence, 6),
        "alternatives": [
            {
                "category_id": a.category_id,
                "category_path": list(a.path),
                "score": round(a.score, 6),
            }
            for a in decision.alternatives
        ],
        "abstained": decision.abstained,
        "needs_review": decision.needs_review,
        "standard_category": msgspec.to_builtins(standard),
        "google_product_category": msgspec.to_builtins(google),
        "model_version": version,
    }


class MerchantFeed:
    """A Google Merchant Center supplemental feed (CSV): one row per product, with the
    Google product category of its predicted category (empty when the mapping has none:
    Merchant Center then categorizes the product itself) and the path as ``product_type``.
    Counts what it wrote, so the caller can say how many products lack a category."""

    def __init__(self, out: IO[str]) -> None:
        self._writer = csv.writer(out, lineterminator="\n")
        self._writer.writerow(FEED_COLUMNS)
        self.rows = 0
        self.without_category = 0

    def write(self, product_id: str, decision: Decision, classifier: Classifier) -> None:
        _, google = classifier.standard.values(decision.path)
        if google is None:
            self.without_category += 1
        self._writer.writerow([product_id, google.id if google else "", " > ".join(decision.path)])
        self.rows += 1


class SkippedRows:
    """The bad rows of one products file, as ``prodcat predict --skip-invalid`` reports
    them: their errors (line and problem) and their text as it was in the file."""

    def __init__(self, src: Path) -> None:
        self.src = Path(src)
        self.errors: list[RecordError] = []

    def __call__(self, error: RecordError) -> None:
        self.errors.append(error)

    def __len__(self) -> int:
        return len(self.errors)

    def write(self, out: IO[str]) -> None:
        """The skipped rows in the input's format, so they can be fixed and run again:
        a CSV gets the input's header row first."""
        if self.src.suffix.lower() not in JSON_LINES_SUFFIXES:
            with self.src.open(encoding="utf-8-sig", newline="") as handle:
                header = next(csv.reader(handle), None)
            if header is not None:
                out.write(csv_line(header) + "\n")
        for error in self.errors:
            if error.raw is not None:
                out.write(error.raw + "\n")


def skipped_path(src: Path, out: Path | None) -> Path:
    """Where the skipped rows go by default: ``<input stem>.skipped<suffix>`` beside the
    output file (or in the current folder when the output is stdout)."""
    folder = out.parent if out is not None else Path()
    return folder / f"{src.stem}.skipped{src.suffix}"


@contextlib.contextmanager
def open_atomic(path: Path) -> Iterator[IO[str]]:
    """A text file that appears at ``path`` only when the ``with`` block succeeds: it is
    written under a temporary name in the same folder and renamed over ``path`` at the
    end (an existing file is replaced whole). On an error the temporary file is removed
    and ``path`` is left as it was."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def count_lines(path: Path) -> int:
    """Physical lines of a file (for progress: rows report the line they start on)."""
    lines = 0
    last = b"\n"
    with Path(path).open("rb") as handle:
        while chunk := handle.read(1 << 20):
            lines += chunk.count(b"\n")
            last = chunk[-1:]
    return lines + (last != b"\n")


def predict_file(
    classifier: Classifier,
    src: Path,
    out: IO[str] | None,
    *,
    batch_size: int = 1024,
    skipped: SkippedRows | None = None,
    progress: Callable[[int, int], None] | None = None,
    feed: MerchantFeed | None = None,
) -> int:
    """Classify every product of ``src`` into JSONL lines on ``out`` (None: no JSONL) and
    rows of ``feed``; returns the count.

    A bad row raises :class:`~workers.core.records.RecordError`, unless ``skipped`` is
    given: then it is recorded there and skipped. ``progress(line, products)`` is called
    after each batch with the line the batch ended on and the products written so far.
    """
    count = 0
    ids: list[str] = []
    items: list[ProductText] = []

    def flush(line: int) -> None:
        nonlocal count
        for pid, decision in zip(ids, classifier.classify(items), strict=True):
            if out is not None:
                record = decision_record(pid, decision, classifier.version, classifier)
                out.write(json.dumps(record, ensure_ascii=False))
                out.write("\n")
            if feed is not None:
                feed.write(pid, decision, classifier)
        count += len(items)
        ids.clear()
        items.clear()
        if progress is not None:
            progress(line, count)

    line = 0
    for row in read_products(src, on_error=skipped):
        line = row.line
        ids.append(row.product_id)
        items.append(row.text)
        if len(items) >= batch_size:
            flush(line)
    if items:
        flush(line)
    return count
