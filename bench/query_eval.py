"""The query model against the TF-IDF + LinearSVC baseline trained on the same data.

Two test sets, both from products that training never saw (``export.data.queries`` splits
the products before it makes queries):

* **pseudo-queries** of the held-out products (``test.jsonl``): one row per query, labelled
  with its product's category;
* **click-derived labels** from a replayed click stream over those same real products:
  each product gets a seeded, Zipf-like number of shopper sessions; a session types one of
  the product's pseudo-queries and clicks the product (probability ``--click-precision``),
  or, as shoppers do, another product of another category. The clicks go through the clicks
  app's own tally (:mod:`workers.clicks.tally`: normalized query, decayed weights, minimum
  weight and majority share), and every query that earns a label is a test row. Queries
  typed for many products ("rice", "跑步鞋") are labelled with the category most shoppers
  chose, as in Lin et al. (IEEE BigData 2018), who report micro-F1 0.60 (leaf) and 0.82
  (top level) on 2,085 click-derived categories.

Figures, for English, Chinese and all rows: micro-F1 at leaf and top level (one answer per
query, so micro-F1 is accuracy), top-3 (the label among the three best leaves), and coverage
at 95% precision (the largest share of queries answerable at leaf level with 95% precision,
ranked by the model's best-leaf probability or the baseline's decision score).

The baseline (``export.evaluation.baseline``) is fitted on every row of ``train.jsonl``, the
file the query bundle was trained from (per language, which is the same model: the two
scripts share no n-gram).

    python -m export.data.queries --data bigbasket,cn_ecommerce_products --out var/queries
    prodcat train --data var/queries/train.jsonl --candidates fasttext --out var/bundles
    python -m bench.query_eval --bundle var/bundles/<version> --queries var/queries
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import RESULTS, RUN_ID
from export.data.queries import is_chinese
from export.evaluation.baseline import run_baseline
from export.evaluation.metrics import coverage_at_precision
from workers.clicks.tally import add_click, label_of, normalize_query
from workers.core.product import ProductText
from workers.core.settings import ClicksSettings
from workers.inference.model import Classifier

Row = tuple[str, tuple[str, ...]]  # (query, leaf path)


def read_rows(path: Path) -> list[tuple[str, str, tuple[str, ...]]]:
    """(product id, query, path) of a pseudo-query file."""
    out = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            r = json.loads(line)
            out.append((r["product_id"].split("#")[0], r["title"], tuple(r["category_path"])))
    return out


def click_labels(
    test: list[tuple[str, str, tuple[str, ...]]], *, precision: float, seed: int
) -> list[Row]:
    """Query labels from a replayed click stream over the held-out products (see above)."""
    rng = random.Random(seed)
    by_product: dict[str, list[str]] = defaultdict(list)
    path_of: dict[str, tuple[str, ...]] = {}
    for pid, query, path in test:
        by_product[pid].append(query)
        path_of[pid] = path
    products = sorted(by_product)
    rng.shuffle(products)
    settings = ClicksSettings()
    tallies: dict[str, Any] = {}
    t = 0.0
    for rank, pid in enumerate(products):
        sessions = max(1, int(20 / (1 + rank / 300) ** 0.8 * rng.random() + rng.random() * 3))
        for _ in range(sessions):
            query = rng.choice(by_product[pid])
            clicked = pid if rng.random() < precision else rng.choice(products)
            key = normalize_query(query)
            t += 1.0
            tallies[key] = add_click(tallies.get(key), path=path_of[clicked], weight=1.0, at=t,
                                     shown=query, settings=settings)  # fmt: skip
    rows: list[Row] = []
    for key, tally in tallies.items():
        label = label_of(tally, settings)
        if label is not None:
            rows.append((key, label))
    return rows


def scores(
    truth: list[tuple[str, ...]], best: list[tuple[str, ...]], top3: list[list[tuple[str, ...]]],
    confidence: np.ndarray,
) -> dict[str, float]:  # fmt: skip
    correct = np.array([t == b for t, b in zip(truth, best, strict=True)])
    top = float(np.mean([t[0] == b[0] for t, b in zip(truth, best, strict=True)]))
    return {
        "n": len(truth),
        "micro_f1_leaf": round(float(correct.mean()), 4),
        "micro_f1_top": round(top, 4),
        "top3": round(float(np.mean([t in ts for t, ts in zip(truth, top3, strict=True)])), 4),
        "coverage_at_95": round(coverage_at_precision(confidence, correct, 0.95), 4),
    }


def model_scores(rows: list[Row], classifier: Classifier) -> dict[str, float]:
    queries = [q for q, _ in rows]
    decisions = []
    for i in range(0, len(queries), 2048):
        decisions += classifier.classify([ProductText(title=q) for q in queries[i : i + 2048]])
    leaves = classifier.bundle.taxonomy.leaves
    return scores(
        [p for _, p in rows],
        [leaves[d.leaf_index] for d in decisions],
        [[a.path for a in d.alternatives[:3]] for d in decisions],
        np.array([d.alternatives[0].score for d in decisions]),
    )


def baseline_scores(
    rows: list[Row], decision: np.ndarray, classes: list[tuple[str, ...]]
) -> dict[str, float]:
    order = np.argsort(-decision, axis=1)[:, :3]
    return scores(
        [p for _, p in rows],
        [classes[i] for i in order[:, 0]],
        [[classes[j] for j in row] for row in order],
        decision.max(axis=1),
    )


def evaluate(
    train: list[tuple[str, str, tuple[str, ...]]],
    sets: dict[str, list[Row]],
    classifier: Classifier,
) -> dict[str, Any]:
    """Per language: the baseline fitted once on the training rows, then every test set
    scored by both."""
    out: dict[str, Any] = {name: {} for name in sets}
    for language in ("en", "zh"):
        mine = {
            name: [r for r in rows if is_chinese(r[0]) == (language == "zh")]
            for name, rows in sets.items()
        }
        fit_rows = sorted({(q, p) for _, q, p in train if is_chinese(q) == (language == "zh")})
        tests = [r for rows in mine.values() for r in rows]
        start = time.perf_counter()
        fitted = run_baseline(
            [ProductText(title=q) for q, _ in fit_rows],
            [p for _, p in fit_rows],
            [ProductText(title=q) for q, _ in tests],
        )
        print(
            f"baseline {language}: fitted on {len(fit_rows)} rows in "
            f"{time.perf_counter() - start:.0f} s",
            flush=True,
        )
        at = 0
        for name, rows in mine.items():
            decision = fitted.decision[at : at + len(rows)]
            at += len(rows)
            result = {
                "prodcat": model_scores(rows, classifier),
                "baseline": baseline_scores(rows, decision, fitted.classes),
            }
            out[name][language] = result
            model, base = result["prodcat"], result["baseline"]
            figures = "  ".join(f"{k} {model[k]:.3f}/{base[k]:.3f}" for k in model if k != "n")
            print(f"{name:14} {language}  n={model['n']:6}  {figures}", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--bundle", type=Path, required=True, help="the query bundle")
    ap.add_argument("--queries", type=Path, required=True, help="export.data.queries output")
    ap.add_argument("--click-precision", type=float, default=0.85)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    train = read_rows(args.queries / "train.jsonl")
    test = read_rows(args.queries / "test.jsonl")
    classifier = Classifier.from_path(args.bundle, top_k=3)
    sets = {
        "pseudo-queries": [(q, p) for _, q, p in test],
        "click labels": click_labels(test, precision=args.click_precision, seed=args.seed),
    }
    results = {
        "bundle": str(args.bundle),
        "click_precision": args.click_precision,
        "results": evaluate(train, sets, classifier),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"query-eval-{RUN_ID}.json"
    path.write_text(json.dumps(results, indent=2, ensure_ascii=False))
    print(f"results: {path}")


if __name__ == "__main__":
    main()
