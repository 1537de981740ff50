# Longer than 400 lines: every shared catalog's registry entry beside its reader and quirks.
"""Loaders for the shared labelled catalogs, and their registry.

Each entry of :data:`DATASETS` knows its folder, files, label and quirks;
:func:`load_dataset` turns it into :class:`~export.data.catalog.Example` rows plus a
:class:`~export.data.catalog.LoadReport`. The data itself is never part of the
repository: it is read from the ``data_dir`` setting (``PRODCAT_DATA_DIR``).

Input/label decisions (each keeps label information out of the input):

* ``bigbasket``: title = ``product``, brand = ``brand``; label = category >
  sub_category > type. The two empty trailing header columns are ignored.
* ``amazon_in_2023``: title = ``name`` with a trailing ``...``/``…`` removed
  (truncated listing titles are real and kept); label = main > sub category.
  ``main_category == "stores"`` rows are dropped: they are storefront buckets
  (``Men's Fashion``, ``The Designer Boutique``...) whose products also belong
  to real categories such as men's clothing, so they are contradictory labels.
* ``implicitave_amazon``: every domain's train/val/test merged (we split
  ourselves, grouped by title); title = ``texts`` without ``[Title] ``; flat
  label = ``category``. ``attribute_names``/``attribute_values`` are the
  ImplicitAVE *targets* (one implicit value per row, chosen per category),
  not catalog attributes a platform would send, so they are not input; the
  domain folder name is not input either (it is a coarse label).
* ``myntra_styles``: title = ``productDisplayName`` (rows with unquoted
  commas are rejoined); attributes = gender, baseColour, usage, season (facets
  a seller fills in, not derived from the category tree); label =
  masterCategory > subCategory > articleType, which are never input.
* ``cn_ecommerce_products``: title only (see :mod:`export.data.cn_lines`); the
  breadcrumb leaks the label and is never input; site and seller are shops,
  not brands, and are not input either. Label = canonical name of the
  category id from ``allcategories.csv``.
* ``online_shopping_10_cats``: the review text as title (BOM removed),
  label = product category (``酒店``, hotels, kept as a class);
  ``online_shopping_10_cats_sentiment`` labels the same rows positive/negative.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from export.data.catalog import Example, LoadReport, require_file
from export.data.cn_lines import CnLineError, load_category_names, parse_line
from export.errors import DataError, ExportError
from workers.core.categories import CategoryPathError, parse_category_path

Loaded = tuple[list[Example], LoadReport]
DATA_DIR_HINT = "set PRODCAT_DATA_DIR (or --data-dir) to the folder holding the shared catalogs"

_ASIN = re.compile(r"/dp/([A-Z0-9]{10})")
_ELLIPSIS = re.compile(r"(?:\s*(?:\.{3,}|…))+\s*$")
_TITLE_PREFIX = re.compile(r"^\s*\[Title\]\s*")
_MISSING = frozenset({"", "NA", "N/A", "nan", "None"})


@dataclass(frozen=True, slots=True)
class DatasetInfo:
    """One shared catalog: where it lives, what is input and what is the label."""

    name: str
    folder: str
    files: tuple[str, ...]
    language: str
    label: str
    levels: int
    text: str
    notes: str
    reader: Callable[[DatasetInfo, Path, _Collector], None]


class _Collector:
    """Collects examples up to ``limit`` and keeps the report."""

    def __init__(self, info: DatasetInfo, limit: int | None) -> None:
        self.info = info
        self.limit = limit
        self.examples: list[Example] = []
        self.report = LoadReport(dataset=info.name, files=list(info.files))

    @property
    def full(self) -> bool:
        return self.limit is not None and len(self.examples) >= self.limit

    def row(self) -> None:
        self.report.rows_read += 1

    def skip(self, reason: str) -> None:
        self.report.skip(reason)

    def add(
        self,
        product_id: str,
        title: str,
        path: tuple[str, ...],
        *,
        brand: str = "",
        attributes: dict[str, str] | None = None,
        repairs: Sequence[str] = (),
    ) -> None:
        """Keep one example of this dataset and count the repairs made to its row."""
        for fix in repairs:
            self.report.repair(fix)
        self.examples.append(
            Example(
                product_id=product_id,
                title=title,
                brand=brand,
                attributes=attributes or {},
                path=path,
                source=self.info.name,
            )
        )


def _csv_rows(
    path: Path, required: Sequence[str], *, delimiter: str = ","
) -> Iterator[tuple[int, list[str], dict[str, int]]]:
    """(1-based line, cells, column index) per data row; checks the header."""
    require_file(path)
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle, delimiter=delimiter)
        header = next(reader, None)
        if header is None:
            raise DataError(path, "file is empty")
        index = {name.strip(): i for i, name in enumerate(header) if name.strip()}
        for column in required:
            if column not in index:
                raise DataError(
                    path,
                    f"column {column!r} is missing; expected columns: {', '.join(required)}",
                    line=1,
                )
        start = reader.line_num + 1
        for cells in reader:
            line, start = start, reader.line_num + 1
            if any(cell.strip() for cell in cells):
                yield line, cells, index


def _cell(cells: list[str], index: dict[str, int], column: str) -> str:
    i = index[column]
    return cells[i].strip() if i < len(cells) else ""


def _path_or_skip(out: _Collector, levels: Sequence[str]) -> tuple[str, ...] | None:
    try:
        return parse_category_path(list(levels))
    except CategoryPathError:
        out.skip("empty category level")
        return None


def _read_bigbasket(info: DatasetInfo, root: Path, out: _Collector) -> None:
    columns = ("index", "product", "category", "sub_category", "brand", "type")
    for _line, cells, ix in _csv_rows(root / info.files[0], columns):
        if out.full:
            return
        out.row()
        title = _cell(cells, ix, "product")
        if not title:
            out.skip("empty title")
            continue
        path = _path_or_skip(
            out, [_cell(cells, ix, c) for c in ("category", "sub_category", "type")]
        )
        if path is None:
            continue
        brand = _cell(cells, ix, "brand")
        out.add(_cell(cells, ix, "index"), title, path, brand=brand)


def _read_amazon_in(info: DatasetInfo, root: Path, out: _Collector) -> None:
    columns = ("name", "main_category", "sub_category", "link")
    for line, cells, ix in _csv_rows(root / info.files[0], columns):
        if out.full:
            return
        out.row()
        name = _cell(cells, ix, "name")
        title = _ELLIPSIS.sub("", name)
        if not title:
            out.skip("empty title")
            continue
        main = _cell(cells, ix, "main_category")
        if main == "stores":
            out.skip("storefront bucket 'stores' (not a product type)")
            continue
        path = _path_or_skip(out, [main, _cell(cells, ix, "sub_category")])
        if path is None:
            continue
        asin = _ASIN.search(_cell(cells, ix, "link"))
        product_id = asin.group(1) if asin else f"line:{line}"
        repairs = ("trailing ellipsis removed",) if title != name else ()
        out.add(product_id, title, path, repairs=repairs)


def _read_implicitave(info: DatasetInfo, root: Path, out: _Collector) -> None:
    columns = ("id", "category", "texts")
    for name in info.files:
        for _line, cells, ix in _csv_rows(root / name, columns, delimiter="\t"):
            if out.full:
                return
            out.row()
            title = _TITLE_PREFIX.sub("", _cell(cells, ix, "texts")).strip()
            if not title:
                out.skip("empty title")
                continue
            path = _path_or_skip(out, [_cell(cells, ix, "category")])
            if path is None:
                continue
            out.add(_cell(cells, ix, "id"), title, path)


_MYNTRA_LABEL = ("masterCategory", "subCategory", "articleType")
_MYNTRA_ATTRIBUTES = ("gender", "baseColour", "usage", "season")
_MYNTRA_COLUMNS = ("id", *_MYNTRA_LABEL, *_MYNTRA_ATTRIBUTES, "productDisplayName")


def _read_myntra(info: DatasetInfo, root: Path, out: _Collector) -> None:
    path_file = root / info.files[0]
    for line, raw, ix in _csv_rows(path_file, _MYNTRA_COLUMNS):
        if out.full:
            return
        out.row()
        last = ix["productDisplayName"]
        if last != max(ix.values()):
            raise DataError(path_file, "productDisplayName must be the last column", line=1)
        if len(raw) <= last:
            out.skip("too few columns")
            continue
        # Titles with unquoted commas spill into extra fields: join them back.
        cells = [*raw[:last], ",".join(raw[last:])]
        repairs = ("unquoted commas in productDisplayName rejoined",) if len(raw) > last + 1 else ()
        title = _cell(cells, ix, "productDisplayName")
        if not title:
            out.skip("empty title")
            continue
        path = _path_or_skip(out, [_cell(cells, ix, c) for c in _MYNTRA_LABEL])
        if path is None:
            continue
        attributes = {
            name: value
            for name in _MYNTRA_ATTRIBUTES
            if (value := _cell(cells, ix, name)) not in _MISSING
        }
        product_id = _cell(cells, ix, "id") or f"line:{line}"
        out.add(product_id, title, path, attributes=attributes, repairs=repairs)


def _read_cn(info: DatasetInfo, root: Path, out: _Collector) -> None:
    products, categories = (root / name for name in info.files)
    names = load_category_names(require_file(categories).read_text(encoding="utf-8"))
    if not names:
        raise DataError(categories, "no 'id,L1|L2|L3' rows")
    with require_file(products).open(encoding="utf-8-sig", newline="\n") as handle:
        for line_no, raw in enumerate(handle, start=1):
            if out.full:
                return
            line = raw.rstrip("\r\n")
            if not line.strip():
                continue
            out.row()
            try:
                parsed = parse_line(line, names)
            except CnLineError as exc:
                out.skip(str(exc))
                continue
            out.add(f"line:{line_no}", parsed.title, parsed.path, repairs=parsed.repairs)


def _read_online_shopping(info: DatasetInfo, root: Path, out: _Collector) -> None:
    sentiment = info.name.endswith("_sentiment")
    for line, cells, ix in _csv_rows(root / info.files[0], ("cat", "label", "review")):
        if out.full:
            return
        out.row()
        review = " ".join(_cell(cells, ix, "review").replace("\ufeff", "").split())
        if not review:
            out.skip("empty review")
            continue
        if sentiment:
            polarity = {"1": "positive", "0": "negative"}.get(_cell(cells, ix, "label"), "")
            if not polarity:
                out.skip("sentiment label not 0 or 1")
                continue
        path = (polarity,) if sentiment else _path_or_skip(out, [_cell(cells, ix, "cat")])
        if path is not None:
            out.add(f"line:{line}", review, path)


_IMPLICITAVE_DOMAINS = ("Clothing", "Food", "Footwear", "Home", "Jewlery_and_General_Apparel")

_REGISTRY = (
    DatasetInfo(
        name="bigbasket",
        folder="bigbasket",
        files=("BigBasket Products.csv",),
        language="en",
        label="category > sub_category > type",
        levels=3,
        text="product (title), brand",
        notes="Indian grocery/beauty/home; very skewed leaves; repeated names.",
        reader=_read_bigbasket,
    ),
    DatasetInfo(
        name="amazon_in_2023",
        folder="amazon_in_2023",
        files=("Amazon-Products.csv",),
        language="en",
        label="main_category > sub_category",
        levels=2,
        text="name (title, trailing ellipsis removed)",
        notes="Listing titles, a third truncated; 'stores' storefront rows dropped.",
        reader=_read_amazon_in,
    ),
    DatasetInfo(
        name="implicitave_amazon",
        folder="implicitave_amazon",
        files=tuple(
            f"{domain}/{part}.tsv"
            for domain in _IMPLICITAVE_DOMAINS
            for part in ("train", "val", "test")
        ),
        language="en",
        label="category (flat)",
        levels=1,
        text="texts without '[Title] ' (title)",
        notes="All five domains and their own splits merged; attribute columns not used.",
        reader=_read_implicitave,
    ),
    DatasetInfo(
        name="myntra_styles",
        folder="myntra_styles",
        files=("styles.csv",),
        language="en",
        label="masterCategory > subCategory > articleType",
        levels=3,
        text="productDisplayName (title); gender, baseColour, usage, season (attributes)",
        notes="Fashion; unquoted commas in 22 titles rejoined; many duplicate titles.",
        reader=_read_myntra,
    ),
    DatasetInfo(
        name="cn_ecommerce_products",
        folder="cn_ecommerce_products",
        files=("products.csv", "allcategories.csv"),
        language="zh",
        label="L1 > L2 > L3 (canonical name of the category id)",
        levels=3,
        text="title only (breadcrumb leaks the label; site/seller are shops)",
        notes="No quoting; damaged lines skipped by reason; book rows have swapped columns.",
        reader=_read_cn,
    ),
    DatasetInfo(
        name="online_shopping_10_cats",
        folder="online_shopping_10_cats",
        files=("online_shopping_10_cats.csv",),
        language="zh",
        label="cat (flat; 10 values, 酒店 = hotels)",
        levels=1,
        text="review (customer review text, not a title)",
        notes="Reviews, not titles; BOM inside the first reviews removed.",
        reader=_read_online_shopping,
    ),
    DatasetInfo(
        name="online_shopping_10_cats_sentiment",
        folder="online_shopping_10_cats",
        files=("online_shopping_10_cats.csv",),
        language="zh",
        label="positive | negative (from label 1 / 0)",
        levels=1,
        text="review (customer review text, not a title)",
        notes="Same rows as online_shopping_10_cats, labelled by sentiment.",
        reader=_read_online_shopping,
    ),
)

DATASETS: dict[str, DatasetInfo] = {info.name: info for info in _REGISTRY}


def resolve_data_dir(data_dir: Path) -> Path:
    """``data_dir`` if it is a folder, else a :class:`DataError` that says how to set it."""
    if not Path(data_dir).is_dir():
        raise DataError(data_dir, f"data folder not found: {DATA_DIR_HINT}")
    return Path(data_dir)


def load_dataset(name: str, data_dir: Path, *, limit: int | None = None) -> Loaded:
    """Load one shared catalog by registry name.

    ``limit`` keeps at most that many usable rows, the first ones in file
    order (deterministic). Raises :class:`DataError` for a missing folder or
    file or a broken header, :class:`ExportError` for an unknown name.
    """
    info = DATASETS.get(name)
    if info is None:
        raise ExportError(f"unknown dataset {name!r}; known: {', '.join(sorted(DATASETS))}")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be at least 1, not {limit}")
    root = resolve_data_dir(data_dir) / info.folder
    if not root.is_dir():
        raise DataError(root, f"dataset folder {info.folder!r} not found: {DATA_DIR_HINT}")
    out = _Collector(info, limit)
    info.reader(info, root, out)
    return out.examples, out.report.finish(out.examples)
