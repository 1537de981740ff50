"""What the offline commands ``prodcat train``, ``export`` and ``heldout`` do.

Their flags are declared in :mod:`export.cli`; this module is imported only when one of
them runs (and imports TensorFlow only once training starts).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import IO, Any

from export.errors import ExportError
from export.training.config import TrainConfig
from export.training.hyper import ARCHITECTURES, parse_candidate
from workers.core.settings import Settings
from workers.inference.bundle import load_bundle, pack_bundle, read_metadata
from workers.inference.spec import FeaturizerSpec

log = logging.getLogger("prodcat.train")


def _known_candidate(name: str) -> bool:
    try:
        parse_candidate(name)
    except ValueError:
        return False
    return True


def train_config(args: argparse.Namespace, settings: Settings) -> TrainConfig:
    """The ``prodcat train`` flags as a config. What no flag sets follows from the data
    (:func:`export.training.hyper.defaults_for`, logged at start)."""
    candidates = None
    if args.candidates:
        candidates = tuple(c.strip() for c in args.candidates.split(",") if c.strip())
        unknown = [c for c in candidates if not _known_candidate(c)]
        if unknown:
            raise ExportError(
                f"--candidates: unknown {unknown}; choose from {', '.join(ARCHITECTURES)}"
                " (NAME@K trains NAME again with seed + K, e.g. bag@1)"
            )
    overrides: dict[str, Any] = {}
    if args.dim:
        overrides["dim"] = args.dim
    if args.label_smoothing is not None:
        overrides["label_smoothing"] = args.label_smoothing
    if args.learning_rate is not None:
        overrides["learning_rate"] = args.learning_rate
    return TrainConfig(
        data=tuple(args.data),
        data_dir=settings.data_dir,
        out=args.out,
        candidates=candidates,
        seed=args.seed,
        limit=args.limit,
        max_epochs=args.epochs,
        target_precision=args.target_precision,
        baseline=not args.no_baseline,
        labels=tuple(args.labels),
        version=args.version,
        overrides=overrides,
        spec=(
            FeaturizerSpec(word_buckets=args.buckets, char_buckets=args.buckets)
            if args.buckets
            else FeaturizerSpec()
        ),
        verbose=0 if args.quiet else None,
    )


def train_command(args: argparse.Namespace, settings: Settings) -> int:
    from export.pipeline import run

    root = run(train_config(args, settings))
    evaluation = read_metadata(root).evaluation
    if evaluation is None:
        raise ExportError(f"{root}: the bundle holds no evaluation")
    ours = evaluation.ours
    base = evaluation.baseline or {}
    print(f"bundle: {root}")
    print(f"report: {root / 'report' / 'report.md'}")
    for key in ("weighted_f1", "macro_f1", "top3_accuracy", "hier_f1", "coverage_at_95"):
        theirs = base.get(key)
        line = f"  {key:16s} prodcat {ours.get(key) or 0.0:.4f}"
        if isinstance(theirs, float):
            line += f"   baseline {theirs:.4f}"
        print(line)
    return 0


def export_command(args: argparse.Namespace, settings: Settings) -> int:
    bundle = load_bundle(args.bundle)
    out: Path = args.out or args.bundle.with_name(args.bundle.name + ".tar.gz")
    pack_bundle(bundle.root, out)
    print(f"{out} (version {bundle.version}, bundle sha256 {bundle.sha256})", file=sys.stdout)
    return 0


def heldout_command(args: argparse.Namespace, settings: Settings) -> int:
    """Write the held-out test rows of a bundle as JSON Lines (a products file)."""
    from export.training.prepare import rebuild_split

    bundle = load_bundle(args.bundle)
    prep = rebuild_split(bundle.metadata, settings.data_dir)
    rows = [prep.examples[i] for i in prep.test]
    if args.out in (None, "-"):
        _write_rows(rows, sys.stdout)
    else:
        with Path(args.out).open("w", encoding="utf-8") as out:
            _write_rows(rows, out)
    log.info("%d held-out rows of bundle %s (its test split)", len(rows), bundle.version)
    return 0


def _write_rows(rows: list[Any], out: IO[str]) -> None:
    for e in rows:
        record = {
            "product_id": e.product_id,
            "title": e.title,
            "brand": e.brand,
            "description": e.description,
            "attributes": e.attributes,
            "category_path": list(e.path),
            "source": e.source,
        }
        out.write(json.dumps(record, ensure_ascii=False) + "\n")


__all__ = ["export_command", "heldout_command", "train_command", "train_config"]
