"""The training data model and the loader for catalogs exported by a platform.

An :class:`Example` is one labelled product: the text the model may read
(title, brand, description, attributes) and the label (``path``, root first).
Every loader returns its examples together with a :class:`LoadReport` that
says how many rows it read, kept, skipped (by reason) and repaired, so a
training run can log exactly what went in.

:func:`load_catalog_file` reads the generic export format (CSV with a header,
or JSON Lines)::

    product_id, title, description, brand, attributes, category_path[, updated_at | label_time]

``attributes`` is a JSON object (CSV: a JSON object string, or ``k:v; k:v``);
``category_path`` is ``"A > B > C"`` or, in JSON Lines, an array of levels.
Only ``title`` and ``category_path`` are required. ``updated_at`` (or
``label_time``) is an ISO 8601 time or epoch seconds; it lets a newer
correction win over an older catalog label later on.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from export.errors import DataError

GENERIC_COLUMNS = ("product_id", "title", "description", "brand", "attributes", "category_path")
REQUIRED_COLUMNS = ("title", "category_path")
TIME_COLUMNS = ("updated_at", "label_time")
PATH_SEPARATOR = ">"

csv.field_size_limit(1 << 24)


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
        return f" {PATH_SEPARATOR} ".join(self.path)


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


def split_path(text: str) -> tuple[str, ...]:
    """``"A > B > C"`` -> ``("A", "B", "C")``; an empty level makes the whole path empty."""
    levels = tuple(level.strip() for level in text.split(PATH_SEPARATOR))
    return levels if all(levels) else ()


def parse_time(value: object) -> datetime | None:
    """An ISO 8601 string or epoch seconds as an aware UTC datetime; empty -> None.

    Raises ``ValueError`` for anything else.
    """
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError(f"not a time: {value!r}")
    if isinstance(value, int | float):
        return datetime.fromtimestamp(float(value), tz=UTC)
    text = str(value).strip()
    if not text:
        return None
    try:
        return datetime.fromtimestamp(float(text), tz=UTC)
    except ValueError:
        pass
    stamp = datetime.fromisoformat(text)
    return stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)


def _attribute_value(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value if v is not None)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)


def _attributes_from_mapping(raw: Mapping[Any, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in raw.items():
        text = _attribute_value(value)
        if text is not None and text.strip() and str(key).strip():
            out[str(key).strip()] = text.strip()
    return out


def parse_attributes(text: str) -> dict[str, str]:
    """A CSV attributes cell: a JSON object, or ``k:v; k:v``. Raises ``ValueError``."""
    text = text.strip()
    if not text:
        return {}
    if text.startswith("{"):
        raw = json.loads(text)
        if not isinstance(raw, dict):
            raise ValueError("attributes JSON is not an object")
        return _attributes_from_mapping(raw)
    out: dict[str, str] = {}
    for item in text.split(";"):
        if not item.strip():
            continue
        key, sep, value = item.partition(":")
        if not sep or not key.strip():
            raise ValueError(f"attributes item {item.strip()!r} is not 'key:value'")
        if value.strip():
            out[key.strip()] = value.strip()
    return out


def _clean_header(name: str | None) -> str:
    return (name or "").strip().lstrip("\ufeff").strip().lower()


def _expected() -> str:
    return f"expected columns: {', '.join(GENERIC_COLUMNS)} (optional: {' or '.join(TIME_COLUMNS)})"


def _csv_records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise DataError(path, "file is empty; " + _expected())
        columns = [_clean_header(h) for h in header]
        for required in REQUIRED_COLUMNS:
            if required not in columns:
                raise DataError(path, f"column {required!r} is missing; " + _expected(), line=1)
        start = reader.line_num + 1
        for row in reader:
            line, start = start, reader.line_num + 1
            if not any(cell.strip() for cell in row):
                continue
            yield line, {name: cell for name, cell in zip(columns, row, strict=False) if name}


def _jsonl_records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open(encoding="utf-8-sig") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(path, f"malformed JSON: {exc.msg}", line=line_no) from exc
            if not isinstance(record, dict):
                raise DataError(path, "expected a JSON object", line=line_no)
            for required in REQUIRED_COLUMNS:
                if required not in record:
                    raise DataError(
                        path, f"field {required!r} is missing; " + _expected(), line=line_no
                    )
            yield line_no, record


def _text(value: object) -> str:
    return "" if value is None else str(value).strip()


def _record_path(path: Path, line: int, raw: object) -> tuple[str, ...]:
    if isinstance(raw, list):
        levels = tuple(_text(level) for level in raw)
        return levels if levels and all(levels) else ()
    if raw is None or isinstance(raw, str):
        return split_path(raw or "")
    raise DataError(path, "category_path must be a string or an array of strings", line=line)


def _record_attributes(path: Path, line: int, raw: object) -> dict[str, str]:
    try:
        if raw is None:
            return {}
        if isinstance(raw, dict):
            return _attributes_from_mapping(raw)
        if isinstance(raw, str):
            return parse_attributes(raw)
    except ValueError as exc:
        raise DataError(path, f"bad attributes: {exc}", line=line) from exc
    raise DataError(path, "attributes must be an object or a string", line=line)


def _record_time(path: Path, line: int, record: Mapping[str, Any]) -> datetime | None:
    for column in TIME_COLUMNS:
        if record.get(column) not in (None, ""):
            try:
                return parse_time(record[column])
            except (ValueError, OverflowError, OSError) as exc:
                raise DataError(
                    path, f"{column} {record[column]!r} is not ISO 8601 or epoch seconds", line=line
                ) from exc
    return None


def load_catalog_file(
    path: Path, *, source: str | None = None, limit: int | None = None
) -> tuple[list[Example], LoadReport]:
    """Load a platform export (``.csv`` with header, or ``.jsonl``/``.ndjson``).

    Rows with an empty title or an empty/incomplete path are skipped and
    counted. A missing file, a file without rows, a missing ``title`` or
    ``category_path`` column, a malformed JSON line, bad attributes or a bad
    time raise :class:`DataError` naming the file and line. ``limit`` stops
    after that many kept rows.
    """
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be at least 1, not {limit}")
    path = require_file(Path(path))
    name = source or path.stem
    report = LoadReport(dataset=name, files=[path.name])
    records = (
        _jsonl_records(path)
        if path.suffix.lower() in (".jsonl", ".ndjson", ".json")
        else _csv_records(path)
    )
    examples: list[Example] = []
    for line, record in records:
        if limit is not None and len(examples) >= limit:
            break
        report.rows_read += 1
        title = _text(record.get("title"))
        category = _record_path(path, line, record.get("category_path"))
        attributes = _record_attributes(path, line, record.get("attributes"))
        label_time = _record_time(path, line, record)
        if not title:
            report.skip("empty title")
            continue
        if not category:
            report.skip("empty category_path")
            continue
        examples.append(
            Example(
                product_id=_text(record.get("product_id")) or f"{path.name}:{line}",
                title=title,
                brand=_text(record.get("brand")),
                description=_text(record.get("description")),
                attributes=attributes,
                path=category,
                source=name,
                label_time=label_time,
            )
        )
    if report.rows_read == 0:
        raise DataError(path, "no rows: the file holds no products")
    return examples, report.finish(examples)
