"""``prodcat predict`` and ``prodcat labels dump``: products and labels files."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from typing import IO, Final, TextIO

from workers.cli.common import ConnectionFlags, Subparsers, setting_help
from workers.core.errors import ProdcatError
from workers.core.records import RecordError
from workers.core.settings import Settings
from workers.inference.predict import count_lines

__all__ = ["register"]

log = logging.getLogger("prodcat")

SHOWN_ERRORS: Final = 10
"""Skipped lines named one by one in the log; the file of skipped lines has them all."""


class Progress:
    """``predict: 42% of products.csv · 120,000 products · 8,100/s`` on one terminal
    line, redrawn at most twice a second; only when stderr is a terminal."""

    def __init__(self, src: Path, out: TextIO = sys.stderr) -> None:
        self.out = out
        self.name = src.name
        self.total = count_lines(src) if out.isatty() else 0
        self.started = time.monotonic()
        self.shown = 0.0

    def __call__(self, line: int, products: int) -> None:
        now = time.monotonic()
        if self.total <= 0 or now - self.shown < 0.5:
            return
        self.shown = now
        rate = products / max(now - self.started, 1e-9)
        self.out.write(
            f"\rpredict: {min(line / self.total, 1.0):4.0%} of {self.name} · "
            f"{products:,} products · {rate:,.0f}/s\x1b[K"
        )
        self.out.flush()

    def done(self) -> None:
        if self.shown:
            self.out.write("\r\x1b[K")
            self.out.flush()


def _predict(args: argparse.Namespace, settings: Settings) -> int:
    from workers.inference.model import Classifier
    from workers.inference.predict import (
        MerchantFeed,
        SkippedRows,
        open_atomic,
        predict_file,
        skipped_path,
    )

    bundle = args.bundle or settings.model.bundle
    if bundle is None:
        raise ProdcatError(
            "no bundle: pass --bundle DIR or set PRODCAT_MODEL_BUNDLE (a bundle is the "
            "folder `prodcat train --data CATALOG --out var/bundles` writes)"
        )
    src = Path(args.file)
    out_path = None if args.out in (None, "-") else Path(args.out)
    classifier = Classifier.from_path(Path(bundle), top_k=args.top_k or settings.model.top_k)
    feed_path: Path | None = args.google_feed
    if feed_path is not None and not classifier.standard.active:
        raise ProdcatError(
            f"--google-feed: bundle {classifier.version} has no standard taxonomy mapping; "
            "attach one with prodcat taxonomy align --apply (or align, review, apply) first"
        )
    skipped = SkippedRows(src) if args.skip_invalid else None
    progress = Progress(src)
    feed: MerchantFeed | None = None

    def run(out: IO[str] | None) -> int:
        try:
            return predict_file(
                classifier,
                src,
                out,
                batch_size=args.batch_size,
                skipped=skipped,
                progress=progress,
                feed=feed,
            )
        finally:
            progress.done()

    try:
        with ExitStack() as files:
            if feed_path is not None:
                feed = MerchantFeed(files.enter_context(open_atomic(feed_path)))
            if out_path is not None:
                count = run(files.enter_context(open_atomic(out_path)))
            else:  # stdout, unless only the feed is asked for
                count = run(sys.stdout if args.out == "-" or feed is None else None)
    except RecordError as exc:
        if exc.line is None:
            raise
        kept = f"nothing written to {out_path}" if out_path else "output stopped there"
        raise ProdcatError(
            f"{exc}; {kept}. Fix that line, or pass --skip-invalid to skip bad lines "
            "and list them in a file"
        ) from None
    log.info("classified %d products with model %s", count, classifier.version)
    if feed is not None:
        log.info(
            "wrote %d feed rows to %s; %d without a Google product category (categories the "
            "mapping leaves unmatched: see its status column)",
            feed.rows,
            feed_path,
            feed.without_category,
        )
    if skipped is not None and len(skipped):
        where = Path(args.skipped) if args.skipped else skipped_path(src, out_path)
        with open_atomic(where) as handle:
            skipped.write(handle)
        for error in skipped.errors[:SHOWN_ERRORS]:
            log.warning("skipped %s", error)
        more = len(skipped) - SHOWN_ERRORS
        log.warning(
            "skipped %d invalid line(s) of %s%s; they are in %s",
            len(skipped),
            src,
            f" ({more} more not shown above)" if more > 0 else "",
            where,
        )
    return 0


def _labels(args: argparse.Namespace, settings: Settings) -> int:
    from workers.feedback.labels import dump_labels

    since = _live_cutoff(settings) if args.since_live else None
    if args.out in (None, "-"):
        count = dump_labels(settings, sys.stdout.buffer, timeout_s=args.timeout, since=since)
    else:
        count = dump_labels(settings, Path(args.out), timeout_s=args.timeout, since=since)
    log.info("dumped %d labels from %s", count, settings.topics.labels)
    return 0


def _live_cutoff(settings: Settings) -> datetime:
    """When the live bundle was made: labels after it are ones it never learnt from."""
    from workers.lifecycle.admin import ModelAdmin

    bundle = ModelAdmin(settings).live_bundle()
    log.info("labels made after %s, when the live bundle %s was made",
             bundle.metadata.created_at, bundle.version)  # fmt: skip
    return bundle.metadata.created_at


def register(sub: Subparsers, common: ConnectionFlags) -> None:
    p = sub.add_parser(
        "predict",
        help="classify a CSV/JSONL file of products into JSONL (and a Merchant Center feed)",
    )
    common(p)
    p.add_argument("file", help="products file (CSV with header, or JSONL)")
    p.add_argument(
        "--bundle",
        type=Path,
        help=setting_help("bundle directory or archive", "model", "bundle"),
    )
    p.add_argument(
        "--out",
        help="output JSONL, written whole or not at all (default: stdout, unless only "
        "--google-feed is asked for)",
    )
    p.add_argument(
        "--google-feed",
        type=Path,
        help="also write a Google Merchant Center supplemental feed (CSV: id, "
        "google_product_category, product_type); needs a bundle with a standard mapping",
    )
    p.add_argument("--batch-size", type=int, default=1024, help="products per model batch")
    p.add_argument(
        "--top-k", type=int, help=setting_help("alternatives per product", "model", "top_k")
    )
    p.add_argument(
        "--skip-invalid",
        action="store_true",
        help="skip bad lines instead of stopping at the first: count them, name them in the "
        "log and write them to a file (see --skipped)",
    )
    p.add_argument(
        "--skipped",
        help="with --skip-invalid: file for the skipped lines, in the input's format "
        "(default: INPUT.skipped.EXT beside --out, or in the current folder)",
    )
    p.set_defaults(handler=_predict)

    p = sub.add_parser("labels", help="training labels from the feedback app")
    actions = p.add_subparsers(dest="labels_command", required=True)
    a = actions.add_parser(
        "dump", help="newest label per product from category.labels as JSONL (for train --labels)"
    )
    common(a, kafka=True)
    a.add_argument("--out", help="output JSONL file (default: stdout)")
    a.add_argument("--timeout", type=float, default=30.0, help="seconds to reach the topic end")
    a.add_argument(
        "--since-live",
        action="store_true",
        help="only labels made after the live bundle was (the model store's live version)",
    )
    p.set_defaults(handler=_labels)
