"""``prodcat demo``: the whole loop on real catalog data (:mod:`workers.demo`)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from workers.cli.common import Subparsers
from workers.core.settings import Settings

__all__ = ["register"]


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    from workers.demo.run import run_demo

    return run_demo(args, settings)


def register(sub: Subparsers, common: Callable[[argparse.ArgumentParser], None]) -> None:
    p = sub.add_parser("demo", help="end-to-end demo on real catalog data")
    common(p)
    p.add_argument("--bundle", type=Path, help="serve this bundle instead of training one")
    p.add_argument("--rate", type=float, default=200.0, help="products replayed per second")
    p.add_argument("--count", type=int, default=4000, help="held-out products to replay")
    p.add_argument(
        "--duration", type=float, help="replay for about this many seconds (overrides --count)"
    )
    p.add_argument(
        "--corrections", type=int, default=3, help="scripted moderator corrections to send"
    )
    p.add_argument(
        "--datasets",
        type=lambda text: tuple(x for x in text.split(",") if x),
        default=("bigbasket", "cn_ecommerce_products"),
        help="catalogs to train on (English and Chinese by default); the products replayed "
        "are the held-out rows of the bundle's own catalogs",
    )
    p.add_argument("--train-rows", type=int, default=20000, help="training rows per catalog")
    p.set_defaults(handler=_demo)
