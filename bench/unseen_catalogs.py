"""Catalogs cut from the shared data that no default was tuned on, as generic products files.

A user's catalog is not in prodcat's registry, so the learning curves are also run on
catalogs that look like the ones users bring: one branch of a big catalog with deep paths,
one flat domain, a tree whose rare leaves are filed under their parents (paths of mixed
depth), and a mixed-language shop. They are written as JSONL products files (``title``,
``brand``, ``attributes``, ``category_path``) under ``var/catalogs/`` (never committed: the
rows are the shared data's) and read by ``prodcat train --data FILE`` through the generic
loader, like a user's export:

    python -m bench.unseen_catalogs            # writes var/catalogs/*.jsonl, prints them
    python -m bench.learning_curve --catalogs var/catalogs/bigbasket_beauty.jsonl,...

Which catalogs the defaults were tuned on is recorded in ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

from bench.common import REPO
from export.data.catalog import Example
from export.data.datasets import load_dataset
from workers.core.settings import load_settings

OUT = REPO / "var" / "catalogs"


def _rows(name: str) -> list[Example]:
    rows, _ = load_dataset(name, load_settings().data_dir)
    return rows


def _branch(name: str, top: str) -> list[Example]:
    """The rows of one top-level category, their paths without that level."""
    rows = _rows(name)
    return [_replace_path(e, e.path[1:]) for e in rows if e.path[0] == top and len(e.path) > 1]


def _replace_path(e: Example, path: tuple[str, ...]) -> Example:
    from dataclasses import replace

    return replace(e, path=path)


def _mixed_depth(rows: Sequence[Example], min_rows: int) -> list[Example]:
    """Leaves with fewer than ``min_rows`` rows are filed under their parent (as shops
    do with thin categories): paths of mixed depth, inner nodes that are also answers."""
    counts = Counter(e.path for e in rows)
    return [e if counts[e.path] >= min_rows else _replace_path(e, e.path[:-1]) for e in rows]


CATALOGS: dict[str, tuple[str, Callable[[], list[Example]]]] = {
    "bigbasket_beauty": (
        "bigbasket's 'Beauty & Hygiene' branch: English, 2 levels below it, ~7k rows",
        lambda: _branch("bigbasket", "Beauty & Hygiene"),
    ),
    "cn_apparel": (
        "cn_ecommerce_products' 服饰、鞋、包 branch: Chinese titles only",
        lambda: _branch("cn_ecommerce_products", "服饰、鞋、包"),
    ),
    "myntra_mixed_depth": (
        "myntra_styles with leaves under 30 rows filed under their parent: mixed depth",
        lambda: _mixed_depth(_rows("myntra_styles"), 30),
    ),
    "amazon_in_mixed_depth": (
        "amazon_in_2023 with leaves under 60 rows filed under their parent",
        lambda: _mixed_depth(_rows("amazon_in_2023"), 60),
    ),
    "bilingual_shop": (
        "5,000 bigbasket rows and 5,000 cn_ecommerce_products rows, one shop, two languages",
        lambda: _rows("bigbasket")[::5][:5000] + _rows("cn_ecommerce_products")[::20][:5000],
    ),
}


def write(name: str, rows: Sequence[Example], out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.jsonl"
    with path.open("w", encoding="utf-8") as fh:
        for e in rows:
            record = {
                "product_id": e.product_id,
                "title": e.title,
                "brand": e.brand,
                "attributes": e.attributes,
                "category_path": " > ".join(e.path),
            }
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--only", help="comma-separated names (default: all)")
    args = parser.parse_args(argv)
    names = args.only.split(",") if args.only else list(CATALOGS)
    for name in names:
        about, make = CATALOGS[name]
        rows = make()
        path = write(name, rows, args.out)
        leaves = len({e.path for e in rows})
        depths = sorted({len(e.path) for e in rows})
        print(f"{path}: {len(rows):,} rows, {leaves} leaves, depths {depths} ({about})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
