"""Products files (CSV with a header row, or JSON Lines): the one reader for every command.

``prodcat train`` (catalog files and ``--labels`` files), ``prodcat predict``, the
promotion gate's ``--holdout`` file and the demo's held-out rows all read products files
here, so the same row is the same model input on every path (a unit test feeds one row
through all of them and through the event path).

Columns (CSV header, case-insensitive) or fields (JSON Lines)::

    product_id, title, description, brand, attributes, category_path[, updated_at | label_time]

* ``title`` is required; text fields are stripped;
* ``attributes`` is a JSON object (CSV: a JSON object string, or ``k:v; k:v``), read by
  :func:`parse_attributes`: keys and values stripped, empty ones dropped, lists joined
  with ``", "``, nested objects as JSON;
* ``category_path`` is ``"A > B > C"`` or, in JSON Lines, an array of levels, read by
  :func:`workers.core.categories.parse_category_path`;
* ``updated_at`` / ``label_time`` is an ISO 8601 time or epoch seconds
  (:func:`parse_time`).

Problems are :class:`RecordError`\\ s that name the file, the line and what is wrong.
A caller that would rather skip bad rows (``prodcat predict --skip-invalid``) passes
``on_error``: each bad row's error (with the row as it stands in the file, ``raw``) goes
there and reading carries on; a problem with the file itself (missing, empty, a missing
column) still raises.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from workers.core.categories import CategoryPathError, parse_category_path
from workers.core.errors import ProdcatError
from workers.core.product import ProductText

__all__ = [
    "PRODUCT_COLUMNS",
    "TIME_COLUMNS",
    "ProductRow",
    "RecordError",
    "RowErrorHandler",
    "csv_line",
    "parse_attributes",
    "parse_time",
    "read_products",
    "read_records",
    "record_category_path",
    "record_text",
    "record_time",
]

PRODUCT_COLUMNS: Final = (
    "product_id",
    "title",
    "description",
    "brand",
    "attributes",
    "category_path",
)
TIME_COLUMNS: Final = ("updated_at", "label_time")
JSON_LINES_SUFFIXES: Final = (".jsonl", ".ndjson", ".json")

csv.field_size_limit(1 << 24)


class RecordError(ProdcatError):
    """A products file, or one of its rows, cannot be used.

    The message names the file and, when known, the 1-based line, then says what is
    wrong, e.g. ``feed.csv line 17: column 'title' is missing``. ``path``, ``line`` and
    ``problem`` are kept as attributes; ``raw`` is the row as it stands in the file (a
    JSON line, or the CSV row as one CSV record) when the error is about one row.
    """

    def __init__(
        self, path: Path | str, problem: str, *, line: int | None = None, raw: str | None = None
    ) -> None:
        self.path = Path(path)
        self.line = line
        self.problem = problem
        self.raw = raw
        where = self.path.name if line is None else f"{self.path.name} line {line}"
        super().__init__(f"{where}: {problem} ({self.path})")


RowErrorHandler = Callable[[RecordError], None]
"""Receives each bad row's :class:`RecordError` when a reader is told to skip bad rows."""


def csv_line(cells: Sequence[str]) -> str:
    """``cells`` as one CSV record (quoted as needed), without the line end."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(cells)
    return buffer.getvalue()


def expected_columns() -> str:
    return f"expected columns: {', '.join(PRODUCT_COLUMNS)} (optional: {' or '.join(TIME_COLUMNS)})"


# --------------------------------------------------------------------------- files


def read_records(
    path: Path, *, required: Sequence[str] = ("title",), on_error: RowErrorHandler | None = None
) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line, record)`` of every non-blank row of a CSV (header row) or JSON Lines file
    (``.jsonl``, ``.ndjson``, ``.json``); ``line`` is the 1-based line the row starts on.

    Raises :class:`RecordError` for a missing or empty file, a missing ``required``
    column, and (unless ``on_error`` takes them) a malformed JSON line, one that is not
    an object or one without a ``required`` field.
    """
    rows = _raw_records(Path(path), required, on_error)
    return ((line, record) for line, record, _ in rows)


def _raw_records(
    path: Path, required: Sequence[str], on_error: RowErrorHandler | None
) -> Iterator[tuple[int, dict[str, Any], str]]:
    """``(line, record, raw)``: :func:`read_records` with each row as it is in the file."""
    if not path.is_file():
        raise RecordError(path, "file not found")
    if path.suffix.lower() in JSON_LINES_SUFFIXES:
        return _jsonl_records(path, required, on_error)
    return _csv_records(path, required)


def _report(error: RecordError, on_error: RowErrorHandler | None) -> None:
    """Hand a bad row's error to ``on_error``, or raise it when there is none."""
    if on_error is None:
        raise error
    on_error(error)


def _clean_header(name: str | None) -> str:
    return (name or "").strip().lstrip("\ufeff").strip().lower()


def _csv_records(path: Path, required: Sequence[str]) -> Iterator[tuple[int, dict[str, Any], str]]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise RecordError(path, "file is empty; " + expected_columns())
        columns = [_clean_header(h) for h in header]
        for name in required:
            if name not in columns:
                raise RecordError(
                    path, f"column {name!r} is missing; " + expected_columns(), line=1
                )
        start = reader.line_num + 1
        for row in reader:
            line, start = start, reader.line_num + 1
            if not any(cell.strip() for cell in row):
                continue
            record = {name: cell for name, cell in zip(columns, row, strict=False) if name}
            yield line, record, csv_line(row)


def _jsonl_records(
    path: Path, required: Sequence[str], on_error: RowErrorHandler | None
) -> Iterator[tuple[int, dict[str, Any], str]]:
    with path.open(encoding="utf-8-sig") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            raw = line.rstrip("\r\n")
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                problem = f"malformed JSON: {exc.msg}"
                _report(RecordError(path, problem, line=line_no, raw=raw), on_error)
                continue
            if not isinstance(record, dict):
                _report(
                    RecordError(path, "expected a JSON object", line=line_no, raw=raw), on_error
                )
                continue
            missing = [name for name in required if name not in record]
            if missing:
                problem = f"field {missing[0]!r} is missing; " + expected_columns()
                _report(RecordError(path, problem, line=line_no, raw=raw), on_error)
                continue
            yield line_no, record, raw


# --------------------------------------------------------------------------- fields


def text_value(value: object) -> str:
    """A text cell or field as a stripped string (``None`` is ``""``)."""
    return "" if value is None else str(value).strip()


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


def parse_attributes(value: object) -> dict[str, str]:
    """An ``attributes`` cell or field as ``{name: value}``; raises ``ValueError``.

    ``None`` or ``""`` is no attributes; an object (or, in a cell, a JSON object string)
    keeps its non-empty names and values, stripped (lists joined with ``", "``, nested
    objects as JSON); any other string is ``k:v; k:v`` (an item without ``:`` or with an
    empty name is an error, one with an empty value is dropped).
    """
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return _attributes_from_mapping(value)
    if not isinstance(value, str):
        raise ValueError(f"attributes must be an object or a string, not {type(value).__name__}")
    text = value.strip()
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
        key, sep, val = item.partition(":")
        if not sep or not key.strip():
            raise ValueError(f"attributes item {item.strip()!r} is not 'key:value'")
        if val.strip():
            out[key.strip()] = val.strip()
    return out


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


# --------------------------------------------------------------------------- rows


def record_text(record: Mapping[str, Any], path: Path, line: int) -> ProductText:
    """The model's input of one row: title, brand and description stripped, attributes
    by :func:`parse_attributes`. The title may be empty: the caller decides what that
    means (training skips the row, ``prodcat predict`` refuses the file)."""
    try:
        attributes = parse_attributes(record.get("attributes"))
    except ValueError as exc:
        raise RecordError(path, f"bad attributes: {exc}", line=line) from exc
    return ProductText(
        title=text_value(record.get("title")),
        brand=text_value(record.get("brand")),
        description=text_value(record.get("description")),
        attributes=attributes,
    )


def record_category_path(record: Mapping[str, Any], path: Path, line: int) -> tuple[str, ...]:
    """The row's ``category_path``; a :class:`RecordError` naming the line and the field
    when it is missing, empty, has an empty level or is not a string or a list."""
    try:
        return parse_category_path(record.get("category_path"))
    except (CategoryPathError, TypeError) as exc:
        raise RecordError(path, f"field 'category_path': {exc}", line=line) from exc


def record_time(record: Mapping[str, Any], path: Path, line: int) -> datetime | None:
    """The row's ``updated_at`` (or ``label_time``), or None when it has none."""
    for column in TIME_COLUMNS:
        if record.get(column) not in (None, ""):
            try:
                return parse_time(record[column])
            except (ValueError, OverflowError, OSError) as exc:
                raise RecordError(
                    path, f"{column} {record[column]!r} is not ISO 8601 or epoch seconds", line=line
                ) from exc
    return None


@dataclass(frozen=True, slots=True)
class ProductRow:
    """One row of a products file, as ``prodcat predict`` and the gate read it."""

    line: int
    product_id: str
    text: ProductText
    category_path: tuple[str, ...] | None  # with ``labelled`` only


def read_products(
    path: Path, *, labelled: bool = False, on_error: RowErrorHandler | None = None
) -> Iterator[ProductRow]:
    """Every row of a products file. A row without a title, or (``labelled``) without a
    valid ``category_path``, is a :class:`RecordError` naming its line: raised, or handed
    to ``on_error`` (and the row skipped) when it is given."""
    path = Path(path)
    required = ("title", "category_path") if labelled else ("title",)
    for line, record, raw in _raw_records(path, required, on_error):
        try:
            text = record_text(record, path, line)
            if not text.title:
                raise RecordError(
                    path, "field 'title' is empty: every product needs a title", line=line
                )
            category = record_category_path(record, path, line) if labelled else None
        except RecordError as exc:
            exc.raw = raw
            _report(exc, on_error)
            continue
        yield ProductRow(line, text_value(record.get("product_id")), text, category)
