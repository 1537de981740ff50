"""The shared-catalog loaders on the real files, the cn line parser, and sources/verify.

The real data comes from the ``data_dir`` fixture (``PRODCAT_DATA_DIR``, default
``<repo>/../shared/data``); tests that need it are skipped with a message when it is absent.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import pytest

from export.data.catalog import Example, LoadReport
from export.data.cn_lines import CnLineError, is_breadcrumb, parse_line
from export.data.datasets import DATASETS, load_dataset
from export.data.sources import SOURCES, fingerprint, source_for, verify
from export.errors import DataError, ExportError

TAG = re.compile(r"<[^<>]*>")


@functools.cache
def full(name: str, data_dir: Path) -> tuple[list[Example], LoadReport]:
    return load_dataset(name, data_dir)


# (min classes, max classes, min kept rows) on the full files: plausibility bounds.
EXPECTED = {
    "bigbasket": (550, 597, 27_000),
    "amazon_in_2023": (100, 112, 10_000),
    "implicitave_amazon": (160, 167, 70_000),
    "myntra_styles": (140, 170, 44_000),
    "cn_ecommerce_products": (690, 710, 99_000),
    "online_shopping_10_cats": (10, 10, 62_000),
    "online_shopping_10_cats_sentiment": (2, 2, 62_000),
}


def test_registry_covers_every_dataset_and_source() -> None:
    assert set(EXPECTED) == set(DATASETS)
    for name, info in DATASETS.items():
        source = source_for(name)
        recorded = {f.local for f in source.files}
        assert set(info.files) <= recorded, name
    assert {info.folder for info in DATASETS.values()} == set(SOURCES)


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_limited_slice_has_titles_and_paths_of_the_right_depth(name: str, data_dir: Path) -> None:
    examples, report = load_dataset(name, data_dir, limit=500)
    assert len(examples) == 500
    assert report.rows_kept == 500
    assert report.rows_read >= 500
    assert report.rows_read == 500 + sum(report.skipped.values())
    depth = DATASETS[name].levels
    for example in examples:
        assert example.title
        assert example.title == example.title.strip()
        assert len(example.path) == depth
        assert all(example.path)
        assert example.source == name
        assert example.product_id
    again, _ = load_dataset(name, data_dir, limit=500)
    assert fingerprint(again) == fingerprint(examples)


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_full_load_class_counts_are_plausible(name: str, data_dir: Path) -> None:
    examples, report = full(name, data_dir)
    low, high, rows = EXPECTED[name]
    assert low <= report.classes <= high
    assert len(examples) >= rows
    assert report.rows_kept == len(examples)
    assert report.rows_read == report.rows_kept + sum(report.skipped.values())
    assert report.summary().startswith(f"{name}: read {report.rows_read} rows")


def test_bigbasket_skips_the_empty_name(data_dir: Path) -> None:
    examples, report = full("bigbasket", data_dir)
    assert report.skipped == {"empty title": 1}
    assert report.rows_read == 27_555
    assert all(e.brand == e.brand.strip() for e in examples)


def test_amazon_in_drops_stores_and_strips_ellipsis_only(data_dir: Path) -> None:
    examples, report = full("amazon_in_2023", data_dir)
    assert report.skipped["storefront bucket 'stores' (not a product type)"] == 544
    assert report.repaired["trailing ellipsis removed"] > 3_000
    assert not any(e.title.endswith(("...", "…")) for e in examples)
    assert all(e.path[0] != "stores" for e in examples)
    assert sum(bool(re.fullmatch(r"[A-Z0-9]{10}", e.product_id)) for e in examples) > 10_000


def test_implicitave_merges_all_files_without_prefix_or_attributes(data_dir: Path) -> None:
    examples, report = full("implicitave_amazon", data_dir)
    assert len(report.files) == 15
    assert report.rows_read == 70_214
    assert not any("[Title]" in e.title for e in examples)
    assert all(e.attributes == {} for e in examples)
    assert len({e.product_id for e in examples}) == 70_214


def test_myntra_recovers_comma_rows_and_uses_no_label_attributes(data_dir: Path) -> None:
    examples, report = full("myntra_styles", data_dir)
    assert report.repaired == {"unquoted commas in productDisplayName rejoined": 22}
    assert report.skipped == {}
    comma_titles = [e for e in examples if "," in e.title]
    assert len(comma_titles) >= 22
    for example in examples:
        assert set(example.attributes) <= {"gender", "baseColour", "usage", "season"}
        assert example.path[2] not in example.attributes.values()


def test_cn_never_puts_breadcrumb_text_in_the_title(data_dir: Path) -> None:
    examples, report = full("cn_ecommerce_products", data_dir)
    lines = (data_dir / "cn_ecommerce_products" / "products.csv").read_text("utf-8").split("\n")
    checked = 0
    for example in examples:
        raw = lines[int(example.product_id.removeprefix("line:")) - 1]
        fields = [TAG.sub("", f).strip() for f in raw.split(",")]
        crumbs = [f for f in fields if " > " in f or f.count(">") >= 2]
        assert not any(crumb and crumb in example.title for crumb in crumbs), raw
        assert not is_breadcrumb(example.title)
        checked += 1
    assert checked == report.rows_kept
    assert report.repaired["breadcrumb before title (columns swapped)"] > 5_000
    assert sum(report.skipped.values()) < 0.005 * report.rows_read
    assert {len(e.path) for e in examples} == {3}
    assert len({e.path[0] for e in examples}) == 10


def test_online_shopping_strips_bom_and_has_both_label_variants(data_dir: Path) -> None:
    by_category, report = full("online_shopping_10_cats", data_dir)
    by_sentiment, _ = full("online_shopping_10_cats_sentiment", data_dir)
    assert report.skipped == {"empty review": 1}
    assert not any("\ufeff" in e.title for e in by_category)
    assert [e.title for e in by_category] == [e.title for e in by_sentiment]
    assert {e.path for e in by_sentiment} == {("positive",), ("negative",)}


def test_missing_data_dir_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="set PRODCAT_DATA_DIR"):
        load_dataset("bigbasket", tmp_path / "nowhere")
    with pytest.raises(DataError, match=r"dataset folder 'bigbasket' not found.*PRODCAT_DATA_DIR"):
        load_dataset("bigbasket", tmp_path)
    with pytest.raises(ExportError, match="unknown dataset 'nope'; known: amazon_in_2023"):
        load_dataset("nope", tmp_path)


def test_broken_header_names_file_line_and_columns(tmp_path: Path) -> None:
    folder = tmp_path / "bigbasket"
    folder.mkdir()
    (folder / "BigBasket Products.csv").write_text("index,product,sub_category\n1,a,b\n")
    with pytest.raises(DataError, match=r"BigBasket Products\.csv line 1: column 'category'"):
        load_dataset("bigbasket", tmp_path)


NAMES = {"1001002003": ("家居", "家纺", "毛巾、浴巾"), "1002001001": ("出版物", "图书", "文艺")}


@pytest.mark.parametrize(
    ("line", "title", "repairs"),
    [
        (
            "1001002003,家居|家纺|毛巾,纯棉毛巾 白色,首页>家居>家纺>毛巾,站A,店B",
            "纯棉毛巾 白色",
            (),
        ),
        ("1001002003,家居|家纺|毛巾,毛巾 2条,蓝色,首页 > 家纺 > 毛巾,站A,店B", "毛巾 2条,蓝色", ()),
        ("1001002003,家居|家纺|毛巾、浴巾,浴巾,浴巾 加厚...,站A,", "浴巾", ()),
        ("1001002003 家居|家纺|毛巾,蓝毛巾,a>b>c,站A,店B", "蓝毛巾", ("id and label",)),
        ("1002001001,出版物|图书|文艺,图书>文学>散文,一本书,站A,", "一本书", ("swapped",)),
        (
            "1002001001,出版物|图书|文艺,促销 (促销说明) 图书 > 文学,书名 [平装],站A,作者",
            "书名 [平装]",
            ("swapped",),
        ),
        ("1001002003,家居|家纺|毛巾,A &amp; B  毛巾,首页>家纺>毛巾,站A,", "A & B 毛巾", ()),
    ],
)
def test_cn_line_parser(line: str, title: str, repairs: tuple[str, ...]) -> None:
    parsed = parse_line(line, NAMES)
    assert parsed.title == title
    assert parsed.path == NAMES[parsed.category_id]
    assert len(parsed.repairs) == len(repairs)
    for got, want in zip(parsed.repairs, repairs, strict=True):
        assert want in got


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("1001002003,家居|家纺|毛巾", "fewer than three fields"),
        ("9999,家居|家纺|毛巾,t,a>b>c,s,x", "unknown category id"),
        ("1001002003,家居|家纺|毛巾乱码标题,t,a>b>c,s,x", "label text disagrees"),
        ("1001002003,家居|别的|毛巾,t,a>b>c,s,x", "label text disagrees"),
        (
            "1001002003,家居|家纺|毛巾,很长的标题文字和面包屑粘在一起了呀首页>家纺>毛巾,站A,店B,",
            "fused",
        ),
        ("1001002003,家居|家纺|毛巾,标题,有逗号,没有面包屑,站A,店B", "not separable"),
        ("1001002003,家居|家纺|毛巾,首页>家纺>毛巾,站A,", "no title after it"),
    ],
)
def test_cn_line_parser_rejects_damaged_lines(line: str, reason: str) -> None:
    with pytest.raises(CnLineError, match=reason):
        parse_line(line, NAMES)


def test_local_copy_matches_recorded_checksums(data_dir: Path) -> None:
    assert verify(data_dir) == []


def test_verify_reports_missing_and_changed_files(tmp_path: Path) -> None:
    assert verify(tmp_path / "nowhere") == [
        f"{tmp_path / 'nowhere'}: data folder not found: set PRODCAT_DATA_DIR (or --data-dir) "
        "to the folder holding the shared catalogs"
    ]
    (tmp_path / "myntra_styles").mkdir()
    (tmp_path / "myntra_styles" / "styles.csv").write_bytes(b"x" * 4_332_000)
    problems = verify(tmp_path, ["myntra_styles", "amazon_in_2023"])
    assert len(problems) == 2
    assert problems[0].startswith("amazon_in_2023/Amazon-Products.csv: missing (from gracious7/")
    assert problems[1].startswith("myntra_styles/styles.csv: sha256 mismatch")
    (tmp_path / "myntra_styles" / "styles.csv").write_bytes(b"short")
    assert "5 bytes, expected 4332000" in verify(tmp_path, ["myntra_styles"])[0]


def test_fingerprint_depends_on_content_and_order() -> None:
    a = Example(product_id="1", title="Tea", path=("Food",), source="s")
    b = Example(product_id="2", title="Mug", path=("Home",), source="s")
    assert fingerprint([a, b]) == fingerprint([a, b])
    assert fingerprint([a, b]) != fingerprint([b, a])
    relabelled = Example(product_id="1", title="Tea", path=("Drinks",), source="s")
    assert fingerprint([a, b]) != fingerprint([relabelled, b])
    assert len(fingerprint([])) == 64
