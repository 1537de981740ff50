"""The training data model and the loader for catalogs exported by a platform.

An :class:`Example` is one labelled product: the text the model may read
(title, brand, description, attributes) and the label (``path``, root first).
Every loader returns its examples together with a :class:`LoadReport` that
says how many rows it read, kept, skipped (by reason) and repaired, so a
training run can log exactly what went in.

:func:`load_catalog_file` reads the generic export format, a products file as
:mod:`workers.core.records` defines it (the reader ``prodcat predict`` and the
promotion gate use too), with ``category_path`` required. ``updated_at`` (or
``label_time``) lets a newer correction win over an older catalog label later on.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from export.errors import DataError
from workers.core.categories import CategoryPathError, format_path, parse_category_path
from workers.core.records import RecordError, read_records, record_text, record_time, text_value

REQUIRED_COLUMNS = ("title", "category_path")


@dataclass(frozen=True, slots=True, kw_only=True)
class Example:
    """One labelled product. ``path`` is the category path, root first."""

    product_id: str
    title: str
    brand: str = ""
    description: str = ""
    attributes: dict[str, str] = field(default_factory=dict)
    path: tuple[str, ...]
    source: str
    label_time: datetime | None = None

    @property
    def label(self) -> str:
        """The path as one string, ``"A > B > C"``."""
        return format_path(self.path)


@dataclass(slots=True)
class LoadReport:
    """What a loader read, kept, skipped (reason -> rows) and repaired (fix -> rows)."""

    dataset: str
    files: list[str] = field(default_factory=list)
    rows_read: int = 0
    rows_kept: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    repaired: Counter[str] = field(default_factory=Counter)
    classes: int = 0

    def skip(self, reason: str) -> None:
        """Count one row dropped for ``reason``."""
        self.skipped[reason] += 1

    def repair(self, fix: str) -> None:
        """Count one row kept after ``fix`` was applied to it."""
        self.repaired[fix] += 1

    def finish(self, examples: list[Example]) -> LoadReport:
        """Record the kept rows and their distinct paths; returns ``self``."""
        self.rows_kept = len(examples)
        self.classes = len({e.path for e in examples})
        return self

    def as_dict(self) -> dict[str, Any]:
        """Plain data for run reports and bundle metadata."""
        return {
            "dataset": self.dataset,
            "files": list(self.files),
            "rows_read": self.rows_read,
            "rows_kept": self.rows_kept,
            "classes": self.classes,
            "skipped": dict(sorted(self.skipped.items(), key=_by_count)),
            "repaired": dict(sorted(self.repaired.items(), key=_by_count)),
        }

    def summary(self) -> str:
        """One line for logs."""

        def fmt(counts: Counter[str]) -> str:
            return ", ".join(f"{k}: {v}" for k, v in sorted(counts.items(), key=_by_count))

        line = (
            f"{self.dataset}: read {self.rows_read} rows from {len(self.files)} file(s), "
            f"kept {self.rows_kept} in {self.classes} classes, "
            f"skipped {sum(self.skipped.values())}"
        )
        if self.skipped:
            line += f" ({fmt(self.skipped)})"
        if self.repaired:
            line += f", repaired {sum(self.repaired.values())} ({fmt(self.repaired)})"
        return line


def _by_count(item: tuple[str, int]) -> tuple[int, str]:
    return (-item[1], item[0])


def require_file(path: Path) -> Path:
    """``path`` if it is a readable file, else a :class:`DataError`."""
    if not path.is_file():
        raise DataError(path, "file not found")
    return path


def _category(path: Path, line: int, raw: object) -> tuple[str, ...]:
    """The row's category path; ``()`` when it is missing, empty or has an empty level
    (the row is skipped and counted)."""
    try:
        return parse_category_path(raw)
    except CategoryPathError:
        return ()
    except TypeError as exc:
        raise DataError(
            path, "category_path must be a string or an array of strings", line=line
        ) from exc


def load_catalog_file(
    path: Path, *, source: str | None = None, limit: int | None = None
) -> tuple[list[Example], LoadReport]:
    """Load a platform export (``.csv`` with header, or ``.jsonl``/``.ndjson``).

    Rows with an empty title or an empty/incomplete path (by
    :func:`workers.core.categories.parse_category_path`) are skipped and counted. A
    missing file, a file without rows, a missing ``title`` or ``category_path`` column,
    a malformed JSON line, bad attributes or a bad time raise :class:`DataError` naming
    the file and line. ``limit`` stops after that many kept rows.
    """
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be at least 1, not {limit}")
    path = require_file(Path(path))
    name = source or path.stem
    report = LoadReport(dataset=name, files=[path.name])
    examples: list[Example] = []
    try:
        for line, record in read_records(path, required=REQUIRED_COLUMNS):
            if limit is not None and len(examples) >= limit:
                break
            report.rows_read += 1
            text = record_text(record, path, line)
            category = _category(path, line, record.get("category_path"))
            label_time = record_time(record, path, line)
            if not text.title:
                report.skip("empty title")
                continue
            if not category:
                report.skip("empty category_path")
                continue
            examples.append(
                Example(
                    product_id=text_value(record.get("product_id")) or f"{path.name}:{line}",
                    **text._asdict(),  # title, brand, description, attributes
                    path=category,
                    source=name,
                    label_time=label_time,
                )
            )
    except RecordError as exc:
        raise DataError(exc.path, exc.problem, line=exc.line) from exc
    if report.rows_read == 0:
        raise DataError(path, "no rows: the file holds no products")
    return examples, report.finish(examples)
