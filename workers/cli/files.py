"""``prodcat predict`` and ``prodcat labels dump``: products and labels files."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from workers.cli.common import Subparsers
from workers.core.errors import ProdcatError
from workers.core.settings import Settings

__all__ = ["register"]

log = logging.getLogger("prodcat")


def _predict(args: argparse.Namespace, settings: Settings) -> int:
    from workers.inference.model import Classifier
    from workers.inference.predict import predict_file

    bundle = args.bundle or settings.model.bundle
    if bundle is None:
        raise ProdcatError("no bundle: pass --bundle DIR or set PRODCAT_MODEL_BUNDLE")
    classifier = Classifier.from_path(Path(bundle), top_k=args.top_k or settings.model.top_k)
    if args.out in (None, "-"):
        count = predict_file(classifier, Path(args.file), sys.stdout, batch_size=args.batch_size)
    else:
        with Path(args.out).open("w", encoding="utf-8") as out:
            count = predict_file(classifier, Path(args.file), out, batch_size=args.batch_size)
    log.info("classified %d products with model %s", count, classifier.version)
    return 0


def _labels(args: argparse.Namespace, settings: Settings) -> int:
    from workers.feedback.labels import dump_labels

    if args.out in (None, "-"):
        count = dump_labels(settings, sys.stdout.buffer, timeout_s=args.timeout)
    else:
        count = dump_labels(settings, Path(args.out), timeout_s=args.timeout)
    log.info("dumped %d labels from %s", count, settings.topics.labels)
    return 0


def register(sub: Subparsers, common: Callable[[argparse.ArgumentParser], None]) -> None:
    p = sub.add_parser("predict", help="classify a CSV/JSONL file of products into JSONL")
    common(p)
    p.add_argument("file", help="products file (CSV with header, or JSONL)")
    p.add_argument("--bundle", type=Path, help="bundle directory or archive (PRODCAT_MODEL_BUNDLE)")
    p.add_argument("--out", help="output JSONL (default: stdout)")
    p.add_argument("--batch-size", type=int, default=1024, help="products per model batch")
    p.add_argument("--top-k", type=int, help="alternatives per product (PRODCAT_MODEL_TOP_K)")
    p.set_defaults(handler=_predict)

    p = sub.add_parser("labels", help="training labels from the feedback app")
    common(p)
    actions = p.add_subparsers(dest="labels_command", required=True)
    a = actions.add_parser(
        "dump", help="newest label per product from category.labels as JSONL (for train --labels)"
    )
    a.add_argument("--out", help="output JSONL file (default: stdout)")
    a.add_argument("--timeout", type=float, default=30.0, help="seconds to reach the topic end")
    p.set_defaults(handler=_labels)
