"""Accuracy of the Shopify alignment against the hand-checked sample.

    python bench/taxonomy_alignment.py [--data-dir ../shared/data] [--misses] [--titles 10]

For every catalog in ``tests/data/taxonomy_alignment_gold.jsonl`` this loads the
catalog from the data folder, aligns its whole tree to the Shopify taxonomy (the
products of each leaf as evidence) and scores the sampled leaves: exact node or
an accepted alternative, depth-1 and depth-2 accuracy, hierarchical P/R/F1, how
many answers were flagged ``low`` and how many were left unmatched (``none``).
Rows are split into ``tune`` (the rows the aligner's weights were chosen on) and
``held`` (only reported); the table shows both, per catalog and overall.

``--titles N`` prints N product titles of every sampled leaf beside the gold and
predicted nodes, for reviewing the sample or the answers.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from collections import defaultdict
from pathlib import Path

from export.data.datasets import load_dataset
from export.standard.align import (
    STATUS_LOW,
    STATUS_NONE,
    AlignConfig,
    Aligner,
    Alignment,
    leaf_titles,
)
from export.standard.gold import GoldRow, check_against, load_gold
from export.standard.metrics import Tally
from export.standard.trees import StandardTree, load_shopify

REPO = Path(__file__).resolve().parent.parent
GOLD = REPO / "tests" / "data" / "taxonomy_alignment_gold.jsonl"


def _default_data_dir() -> Path:
    configured = os.environ.get("PRODCAT_DATA_DIR")
    return Path(configured) if configured else REPO.parent / "shared" / "data"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=_default_data_dir())
    parser.add_argument("--gold", type=Path, default=GOLD)
    parser.add_argument("--catalogs", nargs="*", help="only these catalogs")
    parser.add_argument("--misses", action="store_true", help="list every wrong answer")
    parser.add_argument("--titles", type=int, default=0, help="print N titles per leaf")
    parser.add_argument("--max-titles", type=int, default=AlignConfig().max_titles)
    args = parser.parse_args(argv)

    rows = load_gold(args.gold)
    shopify = load_shopify(args.data_dir / "taxonomies" / "shopify")
    problems = check_against(rows, shopify)
    if problems:
        print("the sample does not match the taxonomy:", *problems, sep="\n  ", file=sys.stderr)
        return 1
    aligner = Aligner(shopify, AlignConfig(max_titles=args.max_titles))
    by_catalog = defaultdict(list)
    for row in rows:
        if not args.catalogs or row.catalog in args.catalogs:
            by_catalog[row.catalog].append(row)

    published: dict[tuple[str, str], Tally] = {}
    best: dict[tuple[str, str], Tally] = {}
    started = time.perf_counter()
    for catalog, gold_rows in by_catalog.items():
        examples, _ = load_dataset(catalog, args.data_dir)
        titles = leaf_titles([(e.path, e.title) for e in examples])
        t0 = time.perf_counter()
        answers = {a.path: a for a in aligner.align(titles)}
        seconds = time.perf_counter() - t0
        print(f"{catalog}: {len(answers)} categories aligned in {seconds:.1f} s", file=sys.stderr)
        for row in gold_rows:
            answer = answers[row.category_path]
            node_path = shopify.paths["en"][answer.node]
            label = " > ".join(row.category_path)
            key = (catalog, row.split)
            exact = published.setdefault(key, Tally()).add(
                None if answer.status == STATUS_NONE else node_path,
                row.answers,
                flagged=answer.status == STATUS_LOW,
                label=label,
            )
            best.setdefault(key, Tally()).add(node_path, row.answers, label=label)
            if args.titles:
                _show(row, answer, shopify, titles, args.titles, exact)
    print("Answers as published (status none = no answer):")
    print(_table(published))
    print("\nBest node of every category, flags ignored:")
    print(_table(best))
    if args.misses:
        for (catalog, split), tally in sorted(published.items()):
            for label, predicted, gold in tally.misses:
                print(f"[{catalog}/{split}] {label}\n    got  {predicted}\n    gold {gold}")
    print(f"total {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return 0


def _show(
    row: GoldRow,
    answer: Alignment,
    shopify: StandardTree,
    titles: dict[tuple[str, ...], list[str]],
    n: int,
    exact: bool,
) -> None:
    sample = sorted(set(titles.get(row.category_path, [])))
    random.Random(" > ".join(row.category_path)).shuffle(sample)
    mark = "OK " if exact else "XX "
    print(
        f"{mark}{row.catalog}: {' > '.join(row.category_path)}  [{len(titles[row.category_path])}]"
    )
    print(f"    gold {' > '.join(row.shopify_path)}  ({row.fit}: {row.reason})")
    print(f"    got  {shopify.path(answer.node)}  score {answer.score:.2f} {answer.status}")
    for title in sample[:n]:
        print(f"      - {title[:110]}")


def _table(tallies: dict[tuple[str, str], Tally]) -> str:
    header = (
        f"{'catalog':<24} {'split':<5} {'n':>4} {'exact':>6} {'depth1':>6} {'depth2':>6} "
        f"{'hP':>5} {'hR':>5} {'hF1':>5} {'low':>4} {'none':>4}"
    )
    lines = [header, "-" * len(header)]

    def line(name: str, split: str, t: Tally) -> str:
        r = t.rates()
        return (
            f"{name:<24} {split:<5} {t.n:>4} {r['exact']:>6.3f} {r['depth1']:>6.3f} "
            f"{r['depth2']:>6.3f} {r['hp']:>5.3f} {r['hr']:>5.3f} {r['hf1']:>5.3f} "
            f"{t.flagged:>4} {t.unmatched:>4}"
        )

    totals: dict[str, Tally] = defaultdict(Tally)
    for (catalog, split), tally in sorted(tallies.items()):
        lines.append(line(catalog, split, tally))
        totals[split].merge(tally)
        totals["all"].merge(tally)
    lines.append("-" * len(header))
    for split in ("tune", "held", "all"):
        if split in totals:
            lines.append(line("all catalogs", split, totals[split]))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
