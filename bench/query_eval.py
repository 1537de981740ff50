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

The baseline (``export.evaluation.baseline``) is fitted on exactly the rows the query bundle
learned from: the bundle's metadata names its files (``--data`` and ``--labels``), seed and
split, and :func:`export.training.prepare.prepare` rebuilds them (cleaned, deduplicated,
split); the model's final fit is on its training and validation rows, so the baseline's is
too. The rows ``prodcat train`` held out as its own test split are in neither. Each line
printed is ``prodcat/baseline``.

``--write-train-labels`` makes the second training source: click-derived labels of the
*training* products (their own replayed stream, another seed), a ``--labels`` file::

    python -m export.data.queries --data bigbasket --sample 6000 --out var/queries-en
    python -m bench.query_eval --queries var/queries-en \\
        --write-train-labels var/queries-en/click-labels-train.jsonl
    prodcat train --data var/queries-en/train.jsonl \\
        --labels var/queries-en/click-labels-train.jsonl --no-baseline --out var/bundles
    python -m bench.query_eval --bundle var/bundles/<version> --queries var/queries-en
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
from export.training.config import TrainConfig
from export.training.prepare import prepare
from workers.clicks.tally import add_click, label_of, normalize_query, query_id
from workers.core.product import ProductText
from workers.core.settings import ClicksSettings, Settings
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


def learned_rows(bundle: Path) -> list[Row]:
    """The rows the bundle's model was fitted on, rebuilt from its metadata."""
    meta = json.loads((bundle / "metadata.json").read_text(encoding="utf-8"))
    data, split = meta["data"], meta["data"]["split"]
    config = TrainConfig(
        data=tuple(data["sources"]),
        data_dir=Settings().data_dir,
        out=Path(),
        seed=split["seed"],
        test_frac=split["test_frac"],
        val_frac=split["val_frac"],
        limit=data["limit"],
        labels=tuple(Path(p) for p in data["labels_files"]),
        baseline=False,
    )
    prep = prepare(config)
    if prep.fingerprint != data["fingerprint"]:
        raise SystemExit(
            f"{bundle}: its training files changed since it was trained (fingerprint "
            f"{prep.fingerprint[:12]}, bundle {data['fingerprint'][:12]}); train it again"
        )
    refit = all(c.get("refit") for c in meta["model"]["candidates"] if "hyper" in c)
    known = {prep.examples[i].path for i in prep.train}
    rows = [*prep.train, *(i for i in prep.val if refit and prep.examples[i].path in known)]
    return [(prep.examples[i].title, prep.examples[i].path) for i in rows]


def evaluate(
    learned: list[Row], sets: dict[str, list[Row]], classifier: Classifier
) -> dict[str, Any]:
    """The baseline fitted once on the rows the model learned from; every test set scored
    by both, whole and by the query's script (English: Latin; Chinese: CJK)."""
    tests = [r for rows in sets.values() for r in rows]
    start = time.perf_counter()
    fitted = run_baseline(
        [ProductText(title=q) for q, _ in learned],
        [p for _, p in learned],
        [ProductText(title=q) for q, _ in tests],
    )
    print(
        f"baseline: fitted on {len(learned)} rows in {time.perf_counter() - start:.0f} s",
        flush=True,
    )
    out: dict[str, Any] = {name: {} for name in sets}
    at = 0
    for name, rows in sets.items():
        decision = fitted.decision[at : at + len(rows)]
        at += len(rows)
        slices = {
            "all": np.ones(len(rows), dtype=bool),
            "en": np.array([not is_chinese(q) for q, _ in rows], dtype=bool),
            "zh": np.array([is_chinese(q) for q, _ in rows], dtype=bool),
        }
        for part, keep in slices.items():
            if not keep.any():
                continue
            mine = [r for r, k in zip(rows, keep, strict=True) if k]
            result = {
                "prodcat": model_scores(mine, classifier),
                "baseline": baseline_scores(mine, decision[keep], fitted.classes),
            }
            out[name][part] = result
            model, base = result["prodcat"], result["baseline"]
            figures = "  ".join(f"{k} {model[k]:.3f}/{base[k]:.3f}" for k in model if k != "n")
            print(f"{name:14} {part:3}  n={model['n']:6}  {figures}", flush=True)
    return out


def write_train_labels(
    train: list[tuple[str, str, tuple[str, ...]]], out: Path, *, precision: float, seed: int
) -> int:
    """The click-derived labels of the *training* products (a replayed stream over them,
    labelled by the clicks app's tally) as a ``prodcat train --labels`` file."""
    labels = click_labels(train, precision=precision, seed=seed)
    with out.open("w", encoding="utf-8") as fh:
        for query, path in labels:
            record = {"product_id": query_id(query), "title": query, "category_path": list(path)}
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
    return len(labels)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--bundle", type=Path, help="the query bundle")
    ap.add_argument("--queries", type=Path, required=True, help="export.data.queries output")
    ap.add_argument("--click-precision", type=float, default=0.85)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--write-train-labels",
        type=Path,
        help="only write the click-derived labels of the *training* products (a replayed "
        "stream over them, as the clicks app would label it) as a --labels file, and stop",
    )
    args = ap.parse_args()
    train = read_rows(args.queries / "train.jsonl")
    if args.write_train_labels is not None:
        n = write_train_labels(
            train, args.write_train_labels, precision=args.click_precision, seed=args.seed + 1
        )
        print(f"{n} click-derived query labels -> {args.write_train_labels}")
        return
    if args.bundle is None:
        ap.error("--bundle is required unless --write-train-labels is given")
    test = read_rows(args.queries / "test.jsonl")
    classifier = Classifier.from_path(args.bundle, top_k=3)
    sets = {
        "pseudo-queries": [(q, p) for _, q, p in test],
        "click labels": click_labels(test, precision=args.click_precision, seed=args.seed),
    }
    results = {
        "bundle": str(args.bundle),
        "queries": str(args.queries),
        "click_precision": args.click_precision,
        "results": evaluate(learned_rows(args.bundle), sets, classifier),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"query-eval-{RUN_ID}.json"
    path.write_text(json.dumps(results, indent=2, ensure_ascii=False))
    print(f"results: {path}")


if __name__ == "__main__":
    main()
