"""``prodcat predict``: classify a CSV or JSONL file of products, write JSONL.

For back-filling an existing catalog. It reads the products file with the one reader
of products files (:func:`workers.core.records.read_products`, as training and the gate
do) in chunks, and each chunk goes through
:meth:`workers.inference.model.Classifier.classify`, the same call the classify worker
makes per batch.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO, Any

from workers.core.product import ProductText
from workers.core.records import read_products
from workers.inference.model import Classifier
from workers.inference.taxonomy import Decision


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

    for row in read_products(src):
        ids.append(row.product_id)
        items.append(row.text)
        if len(items) >= batch_size:
            flush()
            count += len(items)
            ids.clear()
            items.clear()
    if items:
        flush()
        count += len(items)
    return count
