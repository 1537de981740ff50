"""``prodcat predict``: classify a CSV or JSONL file of products, write JSONL.

For back-filling an existing catalog. It reads products in chunks, and each
chunk goes through :meth:`workers.inference.model.Classifier.classify`, the same call the
classify worker makes per batch.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from workers.core.errors import ProdcatError
from workers.inference.featurizer import ProductText
from workers.inference.model import Classifier
from workers.inference.taxonomy import Decision


class InputFileError(ProdcatError):
    """A products file for ``prodcat predict`` cannot be read."""


def _attributes(value: Any, where: str) -> dict[str, str]:
    if value in (None, ""):
        return {}
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    text = str(value).strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise InputFileError(f"{where}: 'attributes' is not a JSON object ({exc})") from exc
        return {str(k): str(v) for k, v in data.items()}
    pairs = (p.split(":", 1) for p in text.split(";") if ":" in p)
    return {k.strip(): v.strip() for k, v in pairs}


def product_row(record: dict[str, Any], where: str) -> tuple[str, ProductText]:
    """``(product_id, text)`` of one record of a products file (``where`` names it)."""
    title = str(record.get("title") or "").strip()
    if not title:
        raise InputFileError(f"{where}: 'title' is missing or empty")
    product = ProductText(
        title=title,
        brand=str(record.get("brand") or ""),
        description=str(record.get("description") or ""),
        attributes=_attributes(record.get("attributes"), where),
    )
    return str(record.get("product_id") or ""), product


def read_records(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield ``(where, record)`` from a CSV (with a ``title`` column) or JSONL file;
    ``where`` is ``"<path> line <n>"`` for messages."""
    if not path.is_file():
        raise InputFileError(f"{path}: no such file")
    with path.open(encoding="utf-8-sig", newline="") as fh:
        if path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
            for n, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except ValueError as exc:
                    raise InputFileError(f"{path} line {n}: not valid JSON ({exc})") from exc
                if not isinstance(record, dict):
                    raise InputFileError(f"{path} line {n}: expected a JSON object")
                yield f"{path} line {n}", record
        else:
            reader = csv.DictReader(fh)
            if not reader.fieldnames or "title" not in reader.fieldnames:
                raise InputFileError(f"{path} line 1: the header needs a 'title' column")
            for n, record in enumerate(reader, start=2):
                yield f"{path} line {n}", dict(record)


def read_products(path: Path) -> Iterator[tuple[str, ProductText]]:
    """Yield (product_id, text) from a CSV (with header) or JSONL file."""
    for where, record in read_records(path):
        yield product_row(record, where)


def decision_record(product_id: str, decision: Decision, version: str) -> dict[str, Any]:
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
        "model_version": version,
    }


def predict_file(classifier: Classifier, src: Path, out: IO[str], *, batch_size: int = 1024) -> int:
    """Classify every product of ``src`` into JSONL lines on ``out``; returns the count."""
    count = 0
    ids: list[str] = []
    items: list[ProductText] = []

    def flush() -> None:
        for pid, decision in zip(ids, classifier.classify(items), strict=True):
            out.write(
                json.dumps(decision_record(pid, decision, classifier.version), ensure_ascii=False)
            )
            out.write("\n")

    for pid, item in read_products(src):
        ids.append(pid)
        items.append(item)
        if len(items) >= batch_size:
            flush()
            count += len(items)
            ids.clear()
            items.clear()
    if items:
        flush()
        count += len(items)
    return count
