"""What ``prodcat taxonomy align`` and ``prodcat taxonomy apply`` do.

Their flags are declared in :mod:`export.standard.cli`; this module is imported only when
one of them runs.

``align`` maps every category of a bundle (inner ones too) to the Shopify taxonomy, using
the category names and the products filed under each category: the bundle's own training
rows (rebuilt from its metadata and the data folder), or a products file given with
``--products``. It writes the reviewable CSV (:mod:`export.standard.sheet`) and, with
``--apply``, attaches it to the bundle at once. ``apply`` attaches a (reviewed) CSV.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections import Counter
from pathlib import Path

from export.data.catalog import load_catalog_file
from export.errors import ExportError
from export.standard.align import STATUS_LOW, STATUS_NONE, Aligner, leaf_titles
from export.standard.attach import attach, build_mapping
from export.standard.sheet import read_sheet, write_sheet
from export.standard.trees import StandardTree, load_google, load_google_mapping, load_shopify
from workers.core.settings import Settings
from workers.inference.bundle import Bundle, load_bundle

log = logging.getLogger("prodcat.taxonomy")

TAXONOMIES = ("shopify",)


def _trees(folder: Path) -> tuple[StandardTree, StandardTree | None, list[int] | None]:
    """Shopify's tree and, when the Google files are there, Google's and the mapping."""
    shopify = load_shopify(folder / "shopify")
    if not (folder / "google").is_dir():
        log.warning("%s: no google/ folder: the mapping will have no Google categories", folder)
        return shopify, None, None
    google = load_google(folder / "google")
    return shopify, google, load_google_mapping(folder / "shopify", shopify, google).tolist()


def taxonomies_dir(args: argparse.Namespace, settings: Settings) -> Path:
    folder: Path = args.taxonomies or settings.data_dir / "taxonomies"
    if not (folder / "shopify").is_dir():
        raise ExportError(
            f"{folder}: no shopify/ folder with categories.en.txt; pass --taxonomies DIR "
            "(the folder holding shopify/ and google/) or set PRODCAT_DATA_DIR"
        )
    return folder


def bundle_products(
    bundle: Bundle, settings: Settings, products: Path | None
) -> dict[tuple[str, ...], list[str]]:
    """Titles per leaf of the bundle: from ``products`` (a products file with
    ``category_path``) or the bundle's own training rows."""
    leaves = set(bundle.taxonomy.leaves)
    if products is not None:
        rows, report = load_catalog_file(products)
        log.info("%s", report.summary())
    else:
        from export.training.prepare import rebuild_split

        try:
            rows = rebuild_split(bundle.metadata, settings.data_dir).examples
        except ExportError as exc:
            raise ExportError(
                f"{exc}. Or pass --products FILE (a products file with category_path)"
            ) from exc
    titles = leaf_titles((e.path, e.title) for e in rows if tuple(e.path) in leaves)
    unknown = sum(1 for e in rows if tuple(e.path) not in leaves)
    if unknown:
        log.info("%d product rows are in categories the bundle does not have: not used", unknown)
    without = len(leaves - set(titles))
    if without:
        log.warning("%d of %d categories have no products: names only", without, len(leaves))
    return {leaf: titles.get(leaf, []) for leaf in bundle.taxonomy.leaves}


def align_command(args: argparse.Namespace, settings: Settings) -> int:
    if args.to not in TAXONOMIES:
        raise ExportError(f"--to {args.to}: supported taxonomies: {', '.join(TAXONOMIES)}")
    bundle = load_bundle(args.bundle)
    shopify, google, to_google = _trees(taxonomies_dir(args, settings))
    products = bundle_products(bundle, settings, args.products)
    alignments = Aligner(shopify).align(products)
    out: Path = args.out or Path(f"{bundle.version}.{args.to}.csv")
    with out.open("w", encoding="utf-8", newline="") as handle:
        write_sheet(handle, alignments, shopify, google, to_google)
    status = Counter(a.status for a in alignments)
    print(
        f"{out}: {len(alignments)} categories mapped to Shopify {shopify.version}: "
        f"{status['ok']} ok, {status[STATUS_LOW]} low (check them), "
        f"{status[STATUS_NONE]} without a match"
    )
    if args.apply:
        return _apply(out, bundle, args.out_bundle, settings, args)
    print(f"review it, then: prodcat taxonomy apply {out} --bundle {args.bundle}")
    return 0


def apply_command(args: argparse.Namespace, settings: Settings) -> int:
    return _apply(args.mapping, load_bundle(args.bundle), args.out, settings, args)


def _apply(
    mapping_csv: Path,
    bundle: Bundle,
    out: Path | None,
    settings: Settings,
    args: argparse.Namespace,
) -> int:
    shopify, google, to_google = _trees(taxonomies_dir(args, settings))
    rows = read_sheet(mapping_csv, shopify)
    mapping = build_mapping(rows, bundle.taxonomy, shopify, google, to_google, mapping_csv)
    root = attach(bundle.root, mapping, out=out)
    result = load_bundle(root)
    info = result.metadata.standard
    assert info is not None
    print(
        f"{root}: version {result.version} carries the {info.taxonomy} {info.version} mapping "
        f"({info.matched}/{info.categories} categories matched, {info.reviewed} reviewed, "
        f"{info.low} low); publish it to serve it",
        file=sys.stdout,
    )
    return 0
