"""One row, one model input: every reader of a product hands the featurizer the same thing.

Real catalog rows (bigbasket: a brand; myntra: attribute facets, one of them missing, as a
platform exports a facet nobody filled in) are written as a products CSV and as JSON Lines,
then read by training (:func:`export.data.catalog.load_catalog_file`), by ``prodcat
predict`` (:func:`workers.inference.predict.predict_file`), by the promotion gate
(:func:`workers.lifecycle.gate.read_holdout`), and sent as ``product.created`` events
through the codec (:meth:`workers.core.product.ProductText.of`, as the classify worker
does). All of them must give the featurizer the same normalized text and the same ids.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from export.data.catalog import Example, load_catalog_file
from export.data.datasets import load_dataset
from workers.core.codec import Codec
from workers.core.events import product_event
from workers.core.product import ProductText
from workers.inference.featurizer import Featurizer
from workers.inference.predict import predict_file
from workers.inference.standard import StandardTable
from workers.inference.taxonomy import Decision, Taxonomy
from workers.lifecycle.gate import read_holdout

FACETS = ("gender", "baseColour", "usage", "season")


@pytest.fixture(scope="module")
def rows(data_dir: Path) -> list[tuple[Example, dict[str, str | None]]]:
    """(row, attributes as exported) of real rows: bigbasket with brands, myntra with facets
    (a facet the catalog leaves empty is exported as null)."""
    grocery, _ = load_dataset("bigbasket", data_dir, limit=4)
    fashion, _ = load_dataset("myntra_styles", data_dir, limit=400)
    partial = [e for e in fashion if 0 < len(e.attributes) < len(FACETS)][:2]
    full = [e for e in fashion if len(e.attributes) == len(FACETS)][:2]
    assert partial and full and all(e.brand for e in grocery)
    out: list[tuple[Example, dict[str, str | None]]] = [(e, {}) for e in grocery]
    out += [(e, {k: e.attributes.get(k) for k in FACETS}) for e in partial + full]
    return out


def _write_csv(path: Path, rows: Sequence[tuple[Example, dict[str, str | None]]]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["product_id", "title", "brand", "attributes", "category_path"])
    for n, (e, attributes) in enumerate(rows):
        if not attributes:
            cell = ""
        elif n % 2:  # both cell forms a platform export uses: "k:v; k:v" and a JSON object
            cell = "; ".join(f"{k}:{v or ''}" for k, v in attributes.items())
        else:
            cell = json.dumps(attributes)
        writer.writerow([e.product_id, e.title, e.brand, cell, " > ".join(e.path)])
    path.write_text(buffer.getvalue(), encoding="utf-8")


def _write_jsonl(path: Path, rows: Sequence[tuple[Example, dict[str, str | None]]]) -> None:
    lines = [
        json.dumps(
            {
                "product_id": e.product_id,
                "title": e.title,
                "brand": e.brand,
                "attributes": attributes,
                "category_path": list(e.path),
            },
            ensure_ascii=False,
        )
        for e, attributes in rows
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


class _Capture:
    """Stands in for the Classifier in ``predict_file`` and keeps what it was asked."""

    version = "capture"

    def __init__(self) -> None:
        self.items: list[ProductText] = []
        self.standard = StandardTable(Taxonomy([("A",)]), None)

    def classify(self, items: Sequence[ProductText]) -> list[Decision]:
        self.items += items
        return [Decision("c", ("A",), 1.0, (), False, False, 0) for _ in items]


def _event_text(e: Example, attributes: dict[str, str | None]) -> ProductText:
    """The classify worker's input for the row sent as a product.created event (the
    contract has no null attribute: a producer leaves a missing facet out)."""
    sent = ProductText(e.title, e.brand, e.description, {k: v for k, v in attributes.items() if v})
    event = product_event(
        sent,
        product_id=e.product_id,
        event_id=f"evt-{e.product_id}",
        occurred_at=datetime(2024, 6, 1, tzinfo=UTC),
    )
    codec = Codec()
    return ProductText.of(codec.decode_product(codec.encode(event)))


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_every_reader_gives_the_same_model_input(
    rows: list[tuple[Example, dict[str, str | None]]], tmp_path: Path, suffix: str
) -> None:
    path = tmp_path / f"products{suffix}"
    (_write_csv if suffix == ".csv" else _write_jsonl)(path, rows)

    training = [ProductText.of(e) for e in load_catalog_file(path)[0]]
    capture = _Capture()
    assert predict_file(capture, path, io.StringIO()) == len(rows)  # type: ignore[arg-type]
    gate = read_holdout(path)
    events = [_event_text(e, attributes) for e, attributes in rows]

    featurizer = Featurizer()
    readers = {"training": training, "predict": capture.items, "gate": gate.items}
    expected = [featurizer.prepare(t) for t in events]
    assert any(p.attributes for p in expected) and any(p.brand for p in expected)
    for name, texts in readers.items():
        assert [featurizer.prepare(t) for t in texts] == expected, name
    ids = featurizer.transform(events)
    for name, texts in readers.items():
        for key, matrix in featurizer.transform(texts).items():
            assert np.array_equal(matrix, ids[key]), (name, key)
    assert gate.truth == [e.path for e, _ in rows]
