"""``prodcat taxonomy align`` and ``prodcat taxonomy apply``: flags only.

:func:`register` adds the ``taxonomy`` command group to the ``prodcat`` parser; the
command line finds it through the entry-point group ``prodcat.commands``
(``pyproject.toml``), like the other offline commands. What the commands do is
:mod:`export.standard.commands`, imported when one of them runs.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from workers.core.settings import Settings

__all__ = ["register"]

Handler = Callable[[argparse.Namespace, Settings], int]


def _run(name: str) -> Handler:
    def handler(args: argparse.Namespace, settings: Settings) -> int:
        command: Handler = getattr(importlib.import_module("export.standard.commands"), name)
        return command(args, settings)

    return handler


def _taxonomies(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--taxonomies",
        type=Path,
        help="folder with shopify/ (categories.en.txt, categories.zh-CN.txt, the "
        "Shopify-to-Google mapping) and google/ (default: PRODCAT_DATA_DIR/taxonomies)",
    )


def register(sub: Any, common: Callable[..., None]) -> None:
    """Add ``taxonomy align`` and ``taxonomy apply`` to the ``prodcat`` parser."""
    p = sub.add_parser(
        "taxonomy", help="map a bundle's categories to the Shopify and Google taxonomies"
    )
    actions = p.add_subparsers(dest="taxonomy_command", required=True)

    a = actions.add_parser(
        "align",
        help="write a reviewable CSV mapping every category of a bundle to Shopify",
    )
    common(a, data=True)
    a.add_argument("--bundle", type=Path, required=True, help="bundle directory")
    a.add_argument("--to", default="shopify", help="standard taxonomy (default: shopify)")
    a.add_argument(
        "--products",
        type=Path,
        help="products file (CSV/JSONL with category_path) for the evidence "
        "(default: the bundle's own training rows, from PRODCAT_DATA_DIR)",
    )
    a.add_argument("--out", type=Path, help="CSV to write (default: <version>.shopify.csv)")
    a.add_argument(
        "--apply",
        action="store_true",
        help="attach the mapping to the bundle at once, without review",
    )
    a.add_argument(
        "--out-bundle",
        type=Path,
        help="with --apply: write the mapped bundle here instead of changing it in place",
    )
    _taxonomies(a)
    a.set_defaults(handler=_run("align_command"))

    a = actions.add_parser(
        "apply", help="attach a (reviewed) mapping CSV to a bundle, as a new bundle version"
    )
    common(a, data=True)
    a.add_argument("mapping", type=Path, help="the CSV of prodcat taxonomy align, reviewed")
    a.add_argument("--bundle", type=Path, required=True, help="bundle directory")
    a.add_argument(
        "--out", type=Path, help="write the mapped bundle here instead of changing it in place"
    )
    _taxonomies(a)
    a.set_defaults(handler=_run("apply_command"))
