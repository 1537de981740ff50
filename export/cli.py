"""The offline commands of ``prodcat``: ``train``, ``export`` and ``heldout``.

:func:`register` adds them to the ``prodcat`` parser. The command line finds it through
the entry-point group ``prodcat.commands`` (``pyproject.toml``), so ``workers`` never
imports ``export``. This module declares flags only; what the commands do is
:mod:`export.commands`, imported when one of them runs (a serving command never loads it).
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
    """The handler ``export.commands.<name>``, imported when the command runs."""

    def handler(args: argparse.Namespace, settings: Settings) -> int:
        command: Handler = getattr(importlib.import_module("export.commands"), name)
        return command(args, settings)

    return handler


def register(sub: Any, common: Callable[..., None]) -> None:
    """Add ``train``, ``export`` and ``heldout`` to the ``prodcat`` parser (``common``:
    ``workers.cli.common.add_connection_flags``; ``data=True`` adds ``--data-dir``)."""
    p = sub.add_parser("train", help="train, evaluate and export a model bundle")
    common(p, data=True)
    p.add_argument(
        "--data",
        action="append",
        required=True,
        help="dataset name (e.g. bigbasket) or CSV/JSONL catalog file; repeatable",
    )
    p.add_argument(
        "--labels",
        action="append",
        type=Path,
        default=[],
        help="extra labels file (e.g. from category.labels); newer labels win",
    )
    p.add_argument("--out", type=Path, default=Path("var/bundles"), help="bundle output folder")
    p.add_argument(
        "--candidates",
        help="networks to train, comma-separated: bag, fasttext; NAME@K trains NAME again "
        "with seed + K, e.g. bag,bag@1; the best one or average on validation ships "
        "(default: chosen from the data's size)",
    )
    p.add_argument("--epochs", type=int, help="maximum epochs per candidate")
    p.add_argument("--limit", type=int, help="use a seeded sample of N rows per dataset")
    p.add_argument("--seed", type=int, default=0, help="seed for split and training")
    p.add_argument(
        "--target-precision",
        type=float,
        default=0.9,
        help="precision the back-off thresholds aim for on validation data",
    )
    p.add_argument("--dim", type=int, help="embedding size (default 64)")
    p.add_argument(
        "--learning-rate", type=float, help="Adam learning rate (default: from the data's size)"
    )
    p.add_argument(
        "--label-smoothing", type=float, help="label smoothing of the training loss (default 0)"
    )
    p.add_argument("--buckets", type=int, help="hash buckets per id table (default 2**18)")
    p.add_argument("--no-baseline", action="store_true", help="skip the TF-IDF baseline")
    p.add_argument(
        "--bundle-version",
        "--version",  # the old spelling, kept as an alias
        dest="version",
        help="bundle version (default: dataset-timestamp-fingerprint)",
    )
    p.add_argument("--quiet", action="store_true", help="no per-epoch progress")
    p.set_defaults(handler=_run("train_command"))

    p = sub.add_parser("export", help="verify a bundle and pack it as one .tar.gz archive")
    common(p)  # log flags only: it reads a bundle, nothing else
    p.add_argument("bundle", type=Path, help="bundle directory")
    p.add_argument("--out", type=Path, help="archive path (default: BUNDLE.tar.gz)")
    p.set_defaults(handler=_run("export_command"))

    p = sub.add_parser(
        "heldout",
        help="write a bundle's held-out test rows (its own test split) as JSON Lines",
    )
    common(p, data=True)
    p.add_argument("bundle", type=Path, help="bundle directory or archive")
    p.add_argument("--out", help="output JSONL (default: stdout)")
    p.set_defaults(handler=_run("heldout_command"))
