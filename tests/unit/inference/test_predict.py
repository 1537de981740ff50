"""``prodcat predict``'s file handling: skip-and-report bad rows, atomic output, progress.

Real bigbasket rows, with bad lines of the kinds a platform export has (broken JSON, a row
without a title, unreadable attributes) put between them. The classifier is a stand-in:
what it answers is tested in tests/integration (test_training, test_cli).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from export.data.catalog import Example
from export.data.datasets import load_dataset
from workers.core.product import ProductText
from workers.core.records import RecordError
from workers.inference.predict import (
    SkippedRows,
    count_lines,
    open_atomic,
    predict_file,
    skipped_path,
)
from workers.inference.standard import StandardTable
from workers.inference.taxonomy import Decision, Taxonomy


class _Stub:
    """Stands in for the Classifier: one fixed decision per product."""

    version = "stub"
    standard = StandardTable(Taxonomy([("A",)]), None)  # no standard taxonomy mapping

    def classify(self, items: Sequence[ProductText]) -> list[Decision]:
        return [Decision("c", ("A",), 1.0, (), False, False, 0) for _ in items]


CLASSIFIER = _Stub()


@pytest.fixture(scope="module")
def rows(data_dir: Path) -> list[Example]:
    examples, _ = load_dataset("bigbasket", data_dir, limit=40)
    return examples


def _json(e: Example) -> str:
    return json.dumps(
        {"product_id": e.product_id, "title": e.title, "brand": e.brand}, ensure_ascii=False
    )


BAD_JSONL = [
    '{"product_id": "broken", "title": "Tata Salt 1 kg"',  # cut off: malformed JSON
    '{"product_id": "untitled", "title": "  ", "brand": "Fresho"}',  # empty title
    '["not", "an", "object"]',
    '{"product_id": "facets", "title": "Amul Butter", "attributes": "weight 500 g"}',
]


@pytest.fixture
def jsonl(tmp_path: Path, rows: list[Example]) -> tuple[Path, list[int]]:
    """A JSONL file of 40 real rows with the bad lines put between them; their line
    numbers."""
    lines = [_json(e) for e in rows]
    bad_at = []
    for n, bad in enumerate(BAD_JSONL):
        at = 3 + n * 9
        lines.insert(at, bad)
        bad_at.append(at + 1)
    path = tmp_path / "products.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path, bad_at


def test_without_skip_the_first_bad_line_stops_it(jsonl: tuple[Path, list[int]]) -> None:
    path, bad_at = jsonl
    with pytest.raises(RecordError) as caught:
        predict_file(CLASSIFIER, path, io.StringIO())  # type: ignore[arg-type]
    assert caught.value.line == bad_at[0]
    assert "malformed JSON" in str(caught.value)


def test_skip_invalid_classifies_the_rest_and_keeps_the_bad_lines(
    jsonl: tuple[Path, list[int]], rows: list[Example], tmp_path: Path
) -> None:
    path, bad_at = jsonl
    skipped = SkippedRows(path)
    out = io.StringIO()
    count = predict_file(CLASSIFIER, path, out, batch_size=7, skipped=skipped)  # type: ignore[arg-type]
    assert count == len(rows)
    written = [json.loads(line)["product_id"] for line in out.getvalue().splitlines()]
    assert written == [e.product_id for e in rows]
    assert [e.line for e in skipped.errors] == bad_at
    problems = [e.problem for e in skipped.errors]
    assert problems[0].startswith("malformed JSON")
    assert problems[1] == "field 'title' is empty: every product needs a title"
    assert problems[2] == "expected a JSON object"
    assert problems[3].startswith("bad attributes")
    # the file of skipped lines holds them as they were: fix it and run it again
    where = skipped_path(path, tmp_path / "out" / "pred.jsonl")
    assert where == tmp_path / "out" / "products.skipped.jsonl"
    keep = tmp_path / "skipped.jsonl"
    with keep.open("w", encoding="utf-8") as handle:
        skipped.write(handle)
    assert keep.read_text(encoding="utf-8").splitlines() == BAD_JSONL


def test_skip_invalid_on_a_csv_keeps_header_and_rows(tmp_path: Path, rows: list[Example]) -> None:
    path = tmp_path / "feed.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["product_id", "title", "brand", "attributes"])
        for n, e in enumerate(rows[:10]):
            writer.writerow([e.product_id, e.title, e.brand, ""])
            if n == 4:
                writer.writerow(["no-title", "", "Fresho", ""])
                writer.writerow(["bad-facets", "Amul Butter, 500 g", "Amul", "weight; 500 g"])
    skipped = SkippedRows(path)
    assert predict_file(CLASSIFIER, path, io.StringIO(), skipped=skipped) == 10  # type: ignore[arg-type]
    assert [e.line for e in skipped.errors] == [7, 8]
    keep = tmp_path / "skipped.csv"
    with keep.open("w", encoding="utf-8") as handle:
        skipped.write(handle)
    with keep.open(encoding="utf-8", newline="") as handle:
        back = list(csv.reader(handle))
    assert back == [
        ["product_id", "title", "brand", "attributes"],
        ["no-title", "", "Fresho", ""],
        ["bad-facets", "Amul Butter, 500 g", "Amul", "weight; 500 g"],
    ]


def test_progress_reports_lines_and_products(jsonl: tuple[Path, list[int]]) -> None:
    path, _ = jsonl
    seen: list[tuple[int, int]] = []
    predict_file(
        CLASSIFIER,  # type: ignore[arg-type]
        path,
        io.StringIO(),  # type: ignore[arg-type]
        batch_size=10,
        skipped=SkippedRows(path),
        progress=lambda line, n: seen.append((line, n)),
    )
    assert [n for _, n in seen] == [10, 20, 30, 40]
    lines = [line for line, _ in seen]
    assert lines == sorted(lines) and lines[-1] == count_lines(path) == 44


def test_open_atomic_leaves_nothing_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "pred.jsonl"
    with pytest.raises(RuntimeError), open_atomic(target) as out:
        out.write('{"product_id": "1"}\n')
        raise RuntimeError("stopped at line 17")
    assert list(tmp_path.iterdir()) == []  # no output, no temporary file
    target.write_text("old\n", encoding="utf-8")
    with pytest.raises(RuntimeError), open_atomic(target) as out:
        out.write("new, partial\n")
        raise RuntimeError("stopped")
    assert target.read_text(encoding="utf-8") == "old\n"  # the old file, whole
    assert list(tmp_path.iterdir()) == [target]
    with open_atomic(target) as out:
        out.write("new\n")
    assert target.read_text(encoding="utf-8") == "new\n"
    assert list(tmp_path.iterdir()) == [target]


def test_count_lines(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_bytes(b"a\nb\nc")
    assert count_lines(path) == 3
    path.write_bytes(b"a\nb\n")
    assert count_lines(path) == 2
    path.write_bytes(b"")
    assert count_lines(path) == 0
