"""workers.core.records: the one reader of products files and its field parsers."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from workers.core.errors import ProdcatError
from workers.core.product import ProductText
from workers.core.records import (
    RecordError,
    parse_attributes,
    parse_time,
    read_products,
    read_records,
)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_parse_attributes() -> None:
    assert parse_attributes(None) == {}
    assert parse_attributes("") == {}
    assert parse_attributes('{"k": "v", "": "x", "e": ""}') == {"k": "v"}
    assert parse_attributes("a:1;;b: 2 ") == {"a": "1", "b": "2"}
    assert parse_attributes({" size ": 42, "colours": ["red", "black"], "none": None}) == {
        "size": "42",
        "colours": "red, black",
    }
    assert parse_attributes({"dims": {"w": 1, "h": 2}}) == {"dims": '{"h": 2, "w": 1}'}
    for bad in ("novalue", ":x", "[1, 2]"):
        with pytest.raises(ValueError, match=r"key:value|not an object|Expecting"):
            parse_attributes(bad)
    with pytest.raises(ValueError, match="object or a string"):
        parse_attributes(7)


def test_parse_time() -> None:
    assert parse_time("") is None
    assert parse_time(None) is None
    assert parse_time(0) == datetime(1970, 1, 1, tzinfo=UTC)
    assert parse_time("1700000000") == datetime.fromtimestamp(1_700_000_000, tz=UTC)
    assert parse_time("2024-03-01T12:00:00+02:00") == datetime(2024, 3, 1, 10, tzinfo=UTC)
    assert parse_time("2024-03-01T12:00:00") == datetime(2024, 3, 1, 12, tzinfo=UTC)
    with pytest.raises(ValueError, match="not a time"):
        parse_time(True)
    with pytest.raises(ValueError):
        parse_time("yesterday")


def test_csv_records_name_their_first_line_and_skip_blank_rows(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "feed.csv",
        'Title,Brand\n"Tea, green\nloose",Lipton\n,\nKettle,\n',
    )
    records = list(read_records(path))
    assert records == [
        (2, {"title": "Tea, green\nloose", "brand": "Lipton"}),
        (5, {"title": "Kettle", "brand": ""}),
    ]


@pytest.mark.parametrize(
    ("name", "text", "pattern"),
    [
        ("empty.csv", "", r"^empty\.csv: file is empty; expected columns: product_id, title"),
        ("nohead.csv", "brand\nx\n", r"^nohead\.csv line 1: column 'title' is missing"),
        ("bad.jsonl", '{"title": "a"}\n{oops\n', r"^bad\.jsonl line 2: malformed JSON"),
        ("list.jsonl", "[1]\n", r"^list\.jsonl line 1: expected a JSON object"),
        ("miss.jsonl", '{"brand": "b"}\n', r"^miss\.jsonl line 1: field 'title' is missing"),
    ],
)
def test_file_problems_name_file_and_line(
    tmp_path: Path, name: str, text: str, pattern: str
) -> None:
    with pytest.raises(RecordError, match=pattern) as info:
        list(read_records(write(tmp_path, name, text)))
    assert isinstance(info.value, ProdcatError)
    assert str(tmp_path / name) in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(RecordError, match=r"nothere\.csv: file not found"):
        read_records(tmp_path / "nothere.csv")


def test_read_products_reads_text_fields_and_labels(tmp_path: Path) -> None:
    rows = [
        {
            "product_id": 7,
            "title": " Running shoe ",
            "brand": " Kappa",
            "attributes": {"size": 42},
            "category_path": ["Sports", "Shoes"],
        },
        {"title": "Kettle", "category_path": "Home > Kitchen > Kettles", "attributes": "w:1"},
    ]
    path = write(tmp_path, "feed.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n")
    shoe, kettle = read_products(path, labelled=True)
    assert (shoe.line, shoe.product_id, shoe.category_path) == (1, "7", ("Sports", "Shoes"))
    assert shoe.text == ProductText("Running shoe", "Kappa", "", {"size": "42"})
    assert kettle.product_id == ""
    assert kettle.category_path == ("Home", "Kitchen", "Kettles")
    assert kettle.text.attributes == {"w": "1"}
    unlabelled = next(iter(read_products(path)))
    assert unlabelled.category_path is None


@pytest.mark.parametrize(
    ("row", "pattern"),
    [
        ("Tea,A >  > C", r"feed\.csv line 3: field 'category_path': .*has an empty level"),
        ("Tea,", r"feed\.csv line 3: field 'category_path': the category path is empty"),
        (",A > B", r"feed\.csv line 3: field 'title' is empty"),
    ],
)
def test_a_bad_labelled_row_stops_with_its_line_and_field(
    tmp_path: Path, row: str, pattern: str
) -> None:
    path = write(tmp_path, "feed.csv", f"title,category_path\nKettle,Home > Kitchen\n{row}\n")
    with pytest.raises(RecordError, match=pattern):
        list(read_products(path, labelled=True))


def test_bad_attributes_name_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "feed.csv", "title,attributes\nTea,colour:green\nKettle,novalue\n")
    with pytest.raises(RecordError, match=r"feed\.csv line 3: bad attributes: attributes item"):
        list(read_products(path))
