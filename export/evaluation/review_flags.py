"""How often :func:`workers.inference.reviews.check_review` flags, on a review bundle's test split.

Every held-out review is paired with a catalog path of each review category
(the first prefix of :data:`workers.inference.reviews.CN_ECOMMERCE_MAP`). Paired with its
own category, a flag is a false alarm; paired with another, a flag is a catch.
Hotel reviews and the hotel category are left out (no catalog counterpart).

    python -m export.evaluation.review_flags var/bundles/<online_shopping_10_cats bundle>
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from export.training.prepare import rebuild_split
from workers.core.product import ProductText
from workers.core.settings import Settings
from workers.inference.bundle import load_bundle
from workers.inference.model import Classifier
from workers.inference.reviews import CN_ECOMMERCE_MAP, check_review


def flag_rates(root: Path, data_dir: Path) -> dict[str, float | int]:
    """False-alarm and catch rates of ``check_review`` on the bundle's test split."""
    bundle = load_bundle(root)
    prep = rebuild_split(bundle.metadata, data_dir)
    products = {c: prefixes[0] for c, prefixes in CN_ECOMMERCE_MAP.items() if prefixes}
    rows = [prep.examples[i] for i in prep.test if prep.examples[i].path[0] in products]
    decisions = Classifier(bundle, top_k=3).classify([ProductText.of(e) for e in rows])
    false_alarms = matching = catches = mismatched = 0
    for example, decision in zip(rows, decisions, strict=True):
        for category, path in products.items():
            flagged = check_review(example.title, path, decision).flagged
            if category == example.path[0]:
                matching += 1
                false_alarms += flagged
            else:
                mismatched += 1
                catches += flagged
    return {
        "reviews": len(rows),
        "false_alarm_rate": false_alarms / max(matching, 1),
        "catch_rate": catches / max(mismatched, 1),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m export.evaluation.review_flags", description=__doc__
    )
    parser.add_argument("bundle", type=Path, help="an online_shopping_10_cats bundle folder")
    args = parser.parse_args(argv)
    sys.stdout.write(json.dumps(flag_rates(args.bundle, Settings().data_dir), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
