"""Featurizer throughput on real titles (not a test).

    python -m bench.featurizer_bench [--rows 5000] [--repeat 3]

Reads title+brand rows from bigbasket and myntra (English) and titles from
cn_ecommerce_products (Chinese) under ``$PRODCAT_DATA_DIR`` (default
``../shared/data`` next to the repository) and prints a Markdown table of
items/s for batch sizes 1, 100 and 1000 on one core: ``transform`` (normalize,
tokenize, hash, pad) and ``content_hashes`` (normalize, digest), per CPU-second
and per wall-clock second.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from bench.common import REPO
from workers.core.product import ProductText
from workers.inference.featurizer import Featurizer


def data_dir() -> Path:
    return Path(os.environ.get("PRODCAT_DATA_DIR", REPO.parent / "shared" / "data"))


def english_rows(root: Path, limit: int) -> list[ProductText]:
    """Half bigbasket product+brand, half myntra productDisplayName."""
    items: list[ProductText] = []
    with (root / "bigbasket" / "BigBasket Products.csv").open(newline="", encoding="utf-8") as f:
        for row in itertools.islice(csv.DictReader(f), limit // 2):
            items.append(ProductText(row["product"] or "", brand=row["brand"] or ""))
    with (root / "myntra_styles" / "styles.csv").open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        next(reader)
        for fields in itertools.islice(reader, limit - len(items)):
            items.append(ProductText(",".join(fields[9:])))
    return items


def chinese_rows(root: Path, limit: int) -> list[ProductText]:
    """cn_ecommerce_products titles: split(',', 2), then drop breadcrumb, site, seller."""
    items: list[ProductText] = []
    with (root / "cn_ecommerce_products" / "products.csv").open(encoding="utf-8") as f:
        # every 7th line, to mix categories (the file is sorted by category)
        for line in itertools.islice(f, 0, None, 7):
            parts = line.rstrip("\n").split(",", 2)
            if len(parts) == 3:
                items.append(ProductText(parts[2].rsplit(",", 3)[0]))
            if len(items) == limit:
                break
    return items


def rate(
    fn: Callable[[Sequence[ProductText]], object], items: list[ProductText], batch: int, repeat: int
) -> tuple[float, float]:
    """Best (CPU, wall) items/s over ``repeat`` passes of ``items`` in batches of ``batch``."""
    batches = [items[i : i + batch] for i in range(0, len(items), batch)]
    cpu = wall = float("inf")
    for _ in range(repeat):
        c0, w0 = time.process_time(), time.perf_counter()
        for chunk in batches:
            fn(chunk)
        cpu = min(cpu, time.process_time() - c0)
        wall = min(wall, time.perf_counter() - w0)
    return len(items) / cpu, len(items) / wall


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=5000, help="rows per language")
    parser.add_argument("--repeat", type=int, default=3, help="passes; the best one counts")
    args = parser.parse_args(argv)
    root = data_dir()
    if not root.is_dir():
        print(f"no data at {root}; set PRODCAT_DATA_DIR", file=sys.stderr)
        return 2
    fz = Featurizer()
    sets = {"English": english_rows(root, args.rows), "Chinese": chinese_rows(root, args.rows)}
    fz.transform(sets["English"][:10])  # build the class table and hash powers once
    spec = f"{fz.spec.kind}/{fz.spec.version}"
    print(f"{args.rows} rows per language, best of {args.repeat} passes, spec {spec}.")
    print("CPU items/s = items per CPU-second of this process (robust on a shared machine).\n")
    print("| language | batch | transform items/s (CPU) | transform items/s (wall) "
          "| content_hashes items/s (CPU) |")  # fmt: skip
    print("|---|---:|---:|---:|---:|")
    for name, items in sets.items():
        for batch in (1, 100, 1000):
            t_cpu, t_wall = rate(fz.transform, items, batch, args.repeat)
            h_cpu, _ = rate(fz.content_hashes, items, batch, args.repeat)
            print(f"| {name} | {batch} | {t_cpu:,.0f} | {t_wall:,.0f} | {h_cpu:,.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
