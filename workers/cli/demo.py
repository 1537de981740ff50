"""``prodcat demo``: the whole loop on real catalog data (:mod:`workers.demo`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from workers.cli.common import ConnectionFlags, Subparsers
from workers.core.errors import ConfigError
from workers.core.settings import Settings
from workers.demo.data import DEMO_DATASETS

__all__ = ["register"]


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    if args.producer_only:
        from workers.demo.producer import produce_only

        return produce_only(
            args, settings, Path(args.bundle) if args.bundle else live_bundle(settings)
        )
    from workers.demo.run import run_demo

    return run_demo(args, settings)


def live_bundle(settings: Settings) -> Path:
    """The live model's bundle (``prodcat models list``), fetched from the model store."""
    from workers.lifecycle.admin import ModelAdmin

    try:
        return ModelAdmin(settings).live_bundle().root
    except ConfigError as exc:
        raise ConfigError(f"demo --producer-only without --bundle: {exc}") from exc


def register(sub: Subparsers, common: ConnectionFlags) -> None:
    p = sub.add_parser("demo", help="end-to-end demo on real catalog data")
    common(p, kafka=True, redis=True, data=True)
    p.add_argument("--bundle", type=Path, help="serve this bundle instead of training one")
    p.add_argument(
        "--query-bundle",
        type=Path,
        help="answer the on-screen search queries with this bundle instead of training one",
    )
    p.add_argument(
        "--no-queries", action="store_true", help="no prodcat serve and no search queries"
    )
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
        default=",".join(DEMO_DATASETS),
        help="catalogs to train on, comma-separated; the products replayed "
        "are the held-out rows of the bundle's own catalogs",
    )
    p.add_argument("--train-rows", type=int, default=20000, help="training rows per catalog")
    p.add_argument(
        "--producer-only",
        action="store_true",
        help="only replay held-out products into the configured input topics "
        "(PRODCAT_TOPICS_PRODUCT_CREATED / _UPDATED) for workers that already run, e.g. "
        "docker compose's; uses --bundle or the live model; no worker, view or clean-up",
    )
    p.set_defaults(handler=_demo)
