"""The data model, the load report and the generic catalog loader (CSV / JSON Lines)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from export.data.catalog import Example, LoadReport, load_catalog_file
from export.errors import DataError, ExportError
from workers.core.errors import ProdcatError

HEADER = "product_id,title,description,brand,attributes,category_path,updated_at\n"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_error_tree_and_message() -> None:
    err = DataError(Path("/x/bigbasket.csv"), "column 'category' is missing", line=17)
    assert isinstance(err, ExportError)
    assert isinstance(err, ProdcatError)
    assert str(err).startswith("bigbasket.csv line 17: column 'category' is missing")
    assert err.line == 17
    assert err.path == Path("/x/bigbasket.csv")


def test_example_is_frozen_and_has_a_label() -> None:
    example = Example(product_id="1", title="Tea", path=("Food", "Tea"), source="t")
    assert example.label == "Food > Tea"
    assert example.brand == ""
    assert example.attributes == {}
    with pytest.raises(AttributeError):
        example.title = "Coffee"  # type: ignore[misc]


def test_csv_happy_path(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "shop.csv",
        HEADER + 'p1,Green Tea 100 bags,Loose leaf,Lipton,"{""pack"": ""100"", ""n"": 2}",'
        "Food > Beverages > Tea,2024-05-01T10:00:00Z\n"
        'p2,"Mug, white",,Acme,colour:white; size : 300 ml,Home > Kitchen,\n'
        ",Garden hose,,,,Garden,1714557600\n"
        "p4,,,,,Food > Tea,\n"
        "p5,Orphan,,,,,\n"
        "p6,Broken path,,,,Food >  > Tea,\n",
    )
    examples, report = load_catalog_file(path)
    assert [e.title for e in examples] == ["Green Tea 100 bags", "Mug, white", "Garden hose"]
    first, second, third = examples
    assert first.path == ("Food", "Beverages", "Tea")
    assert first.attributes == {"pack": "100", "n": "2"}
    assert first.brand == "Lipton"
    assert first.description == "Loose leaf"
    assert first.label_time == datetime(2024, 5, 1, 10, tzinfo=UTC)
    assert first.source == "shop"
    assert second.attributes == {"colour": "white", "size": "300 ml"}
    assert second.label_time is None
    assert third.product_id == "shop.csv:4"
    assert third.label_time == datetime.fromtimestamp(1714557600, tz=UTC)
    assert report.rows_read == 6
    assert report.rows_kept == 3
    assert report.classes == 3
    assert report.skipped == {"empty title": 1, "empty category_path": 2}
    summary = report.summary()
    assert "read 6 rows" in summary
    assert "kept 3" in summary
    assert "empty category_path: 2" in summary
    assert report.as_dict()["skipped"] == {"empty category_path": 2, "empty title": 1}


def test_csv_with_bom_label_time_and_limit(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "bom.csv",
        "\ufefftitle,category_path,label_time\nA,X > Y,2024-01-01\nB,X,\nC,Z,\n",
    )
    examples, report = load_catalog_file(path, limit=2, source="mine")
    assert [e.title for e in examples] == ["A", "B"]
    assert examples[0].label_time == datetime(2024, 1, 1, tzinfo=UTC)
    assert report.dataset == "mine"
    assert report.rows_read == 2


def test_jsonl_happy_path(tmp_path: Path) -> None:
    rows = [
        {
            "product_id": 7,
            "title": " Running shoe ",
            "brand": "Kappa",
            "attributes": {"size": 42, "colours": ["red", "black"], "none": None},
            "category_path": ["Sports", "Shoes"],
            "label_time": "2024-03-01T12:00:00+02:00",
        },
        {"title": "Kettle", "category_path": "Home > Kitchen > Kettles", "attributes": "w:1"},
        {"title": "No label", "category_path": []},
    ]
    text = "\n".join(json.dumps(r) for r in rows[:2]) + "\n\n" + json.dumps(rows[2]) + "\n"
    examples, report = load_catalog_file(write(tmp_path, "feed.jsonl", text))
    assert len(examples) == 2
    shoe, kettle = examples
    assert shoe.product_id == "7"
    assert shoe.title == "Running shoe"
    assert shoe.attributes == {"size": "42", "colours": "red, black"}
    assert shoe.path == ("Sports", "Shoes")
    assert shoe.label_time == datetime(2024, 3, 1, 10, tzinfo=UTC)
    assert kettle.path == ("Home", "Kitchen", "Kettles")
    assert kettle.attributes == {"w": "1"}
    assert kettle.product_id == "feed.jsonl:2"
    assert report.skipped == {"empty category_path": 1}


def test_missing_label_column_names_file_line_and_expected_columns(tmp_path: Path) -> None:
    path = write(tmp_path, "nolabel.csv", "product_id,title,brand\n1,Tea,Lipton\n")
    with pytest.raises(DataError) as info:
        load_catalog_file(path)
    message = str(info.value)
    assert message.startswith("nolabel.csv line 1: column 'category_path' is missing")
    assert "expected columns: product_id, title" in message


def test_missing_label_field_in_jsonl(tmp_path: Path) -> None:
    path = write(tmp_path, "x.jsonl", '{"title": "a", "category_path": "A"}\n{"title": "b"}\n')
    with pytest.raises(DataError, match=r"x\.jsonl line 2: field 'category_path' is missing"):
        load_catalog_file(path)


def test_malformed_json_line_names_file_and_line(tmp_path: Path) -> None:
    good = json.dumps({"title": "a", "category_path": "A"})
    path = write(tmp_path, "bad.jsonl", f"{good}\n\n{{'title': 'single quotes'}}\n")
    with pytest.raises(DataError, match=r"^bad\.jsonl line 3: malformed JSON"):
        load_catalog_file(path)
    path = write(tmp_path, "list.jsonl", "[1, 2]\n")
    with pytest.raises(DataError, match=r"list\.jsonl line 1: expected a JSON object"):
        load_catalog_file(path)


@pytest.mark.parametrize(
    ("name", "text", "pattern"),
    [
        ("empty.csv", "", r"empty\.csv: file is empty"),
        ("header.csv", "title,category_path\n", r"header\.csv: no rows"),
        ("blank.csv", "title,category_path\n,\n\n", r"blank\.csv: no rows"),
        ("empty.jsonl", "\n\n", r"empty\.jsonl: no rows"),
    ],
)
def test_empty_files_raise(tmp_path: Path, name: str, text: str, pattern: str) -> None:
    with pytest.raises(DataError, match=pattern):
        load_catalog_file(write(tmp_path, name, text))


def test_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nothere\.csv: file not found"):
        load_catalog_file(tmp_path / "nothere.csv")


@pytest.mark.parametrize(
    ("row", "pattern"),
    [
        ('T,A,"{""a"": 1",', r"line 2: bad attributes"),
        ("T,A,novalue,", r"line 2: bad attributes: attributes item 'novalue'"),
        ("T,A,,yesterday", r"line 2: updated_at 'yesterday' is not ISO 8601"),
    ],
)
def test_bad_cells_raise_with_line(tmp_path: Path, row: str, pattern: str) -> None:
    path = write(tmp_path, "cells.csv", f"title,category_path,attributes,updated_at\n{row}\n")
    with pytest.raises(DataError, match=pattern):
        load_catalog_file(path)


def test_load_report_summary_lists_reasons_by_count() -> None:
    report = LoadReport(dataset="d", files=["f"])
    report.rows_read = 4
    for reason in ("b", "a", "a"):
        report.skip(reason)
    report.repair("fixed")
    report.finish([Example(product_id="1", title="t", path=("x",), source="d")])
    assert report.summary() == (
        "d: read 4 rows from 1 file(s), kept 1 in 1 classes, skipped 3 (a: 2, b: 1), "
        "repaired 1 (fixed: 1)"
    )
