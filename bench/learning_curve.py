"""Learning curves: prodcat against the TF-IDF + LinearSVC baseline and the fastText library.

For every catalog and size (seeded samples of N rows; ``all`` for every row) the rows are
cleaned and split as ``prodcat train`` does (grouped by normalized title: 20% test, and
prodcat keeps a tenth of the rest for validation, then refits on it). All three systems
learn from the same 80% and are scored on the same 20%: weighted and macro F1 of the top
leaf. Up to 20,000 rows each figure is the mean of ``--seeds`` seeds (spread shown);
above, one seed.

    python -m bench.learning_curve --catalogs bigbasket,amazon_in_2023 \
        --sizes 2000,5000,10000,20000,50000,all --seeds 3

The fastText peer needs the ``bench`` extra (``pip install -e '.[train,bench]'``).

Catalogs are registry names or CSV/JSONL products files (``bench.unseen_catalogs`` writes
catalogs cut from the shared data that no default was tuned on). Raw results are appended
to ``bench/results/learning_curve.jsonl`` (one line per system, catalog, size, seed; a
rerun skips what is there unless ``--fresh``) and the table is written to
``bench/results/learning_curve.md``. ``--set KEY=VALUE`` overrides a prodcat
hyper-parameter, ``--set candidates='"bag,bag@1"'`` the candidates (experiments; recorded in
the results).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from bench.common import RESULTS
from export.evaluation.baseline import baseline_text, run_baseline
from export.training.config import TrainConfig
from export.training.prepare import Prepared, load_examples, prepare
from workers.core.product import ProductText
from workers.core.settings import load_settings
from workers.inference.featurizer import Featurizer
from workers.inference.scores import weighted_f1

log = logging.getLogger("bench.learning_curve")

SYSTEMS = ("prodcat", "baseline", "fasttext")
MULTI_SEED_UP_TO = 20_000


def _macro_f1(truth: Sequence[Any], pred: Sequence[Any]) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(truth, pred, average="macro", zero_division=0))


def _scores(truth: list[tuple[str, ...]], pred: list[tuple[str, ...]]) -> dict[str, float]:
    t = [" > ".join(p) for p in truth]
    p = [" > ".join(x) for x in pred]
    return {"weighted_f1": weighted_f1(t, p), "macro_f1": _macro_f1(t, p)}


def _fitted_rows(prep: Prepared) -> list[int]:
    known = set(prep.taxonomy.leaves)
    return [i for i in (*prep.train, *prep.val) if prep.examples[i].path in known]


def run_prodcat(
    prep: Prepared, config: TrainConfig
) -> tuple[list[tuple[str, ...]], dict[str, Any]]:
    from export.training.train import featurize, fit_model, temper

    feats = featurize(Featurizer(config.spec), [ProductText.of(e) for e in prep.examples])
    fitted = fit_model(config, prep, feats, probe=list(prep.test), verbose=0)
    probs = temper([m.probe_probs for m in fitted.chosen], fitted.temperature)
    leaves = prep.taxonomy.leaves
    pred = [leaves[i] for i in probs.argmax(axis=1).tolist()]
    info = {
        "chosen": fitted.choice.summary["architecture"],
        "temperature": fitted.temperature,
        "hyper": fitted.hyper.to_dict(),
        "epochs": [m.summary.get("best_epoch") for m in fitted.members],
    }
    import keras

    keras.backend.clear_session()
    return pred, info


def run_baseline_system(prep: Prepared) -> tuple[list[tuple[str, ...]], dict[str, Any]]:
    rows = _fitted_rows(prep)
    result = run_baseline(
        [ProductText.of(prep.examples[i]) for i in rows],
        [prep.examples[i].path for i in rows],
        [ProductText.of(prep.examples[i]) for i in prep.test],
    )
    return result.predictions, {}


FASTTEXT_PARAMS = {"epoch": 50, "lr": 1.0, "wordNgrams": 2, "minn": 2, "maxn": 5, "dim": 100}
"""Supervised fastText with word bigrams and char 2-5 grams (the baseline's n-grams), 50
epochs at lr 1.0: fastText's own defaults (5 epochs at 0.1) and the often quoted 25 at 0.5
underfit small catalogs badly (bigbasket, 2,000 rows: weighted F1 0.007 and 0.05, against
0.36 with these)."""


def run_fasttext(prep: Prepared, seed: int) -> tuple[list[tuple[str, ...]], dict[str, Any]]:
    try:
        import fasttext
    except ImportError as exc:
        raise SystemExit(
            "the fastText library is not installed: pip install -e '.[bench]' "
            "(or leave it out with --systems prodcat,baseline)"
        ) from exc

    def line(i: int) -> str:
        return baseline_text(ProductText.of(prep.examples[i])).replace("\n", " ").lower()

    keys: dict[tuple[str, ...], str] = {}
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False, encoding="utf-8") as f:
        for i in _fitted_rows(prep):
            key = keys.setdefault(prep.examples[i].path, f"__label__{len(keys)}")
            f.write(f"{key} {line(i)}\n")
    labels = {key: path for path, key in keys.items()}
    try:
        model = fasttext.train_supervised(
            f.name, thread=min(2, os.cpu_count() or 1), verbose=0, seed=seed, **FASTTEXT_PARAMS
        )
    finally:
        Path(f.name).unlink()
    pred = [labels[model.predict(line(i))[0][0]] for i in prep.test]
    return pred, {"params": FASTTEXT_PARAMS}


def _point(
    catalog: str, size: int | None, seed: int, systems: Sequence[str], overrides: dict[str, Any]
) -> Iterator[dict[str, Any]]:
    """One record per system, each as soon as it is scored (so a later system's failure
    keeps the earlier ones' results)."""
    settings = load_settings()
    hyper = {k: v for k, v in overrides.items() if k != "candidates"}
    candidates = overrides.get("candidates")
    config = TrainConfig(
        data=(catalog,),
        data_dir=settings.data_dir,
        out=Path(),
        seed=seed,
        limit=size,
        baseline=False,
        candidates=tuple(candidates.split(",")) if candidates else None,
        overrides=hyper,
        verbose=0,
    )
    prep = prepare(config)
    truth = [prep.examples[i].path for i in prep.test]
    for system in systems:
        start = time.perf_counter()
        runners: dict[str, Callable[[], tuple[list[tuple[str, ...]], dict[str, Any]]]] = {
            "prodcat": lambda: run_prodcat(prep, config),
            "baseline": lambda: run_baseline_system(prep),
            "fasttext": lambda: run_fasttext(prep, seed),
        }
        pred, info = runners[system]()
        record = {
            "catalog": catalog,
            "size": size or "all",
            "seed": seed,
            "system": system,
            "rows": len(_fitted_rows(prep)) + len(prep.test),
            "classes": len(prep.taxonomy),
            "test_rows": len(truth),
            "seconds": round(time.perf_counter() - start, 1),
            "overrides": overrides,
            **_scores(truth, pred),
            **info,
        }
        log.info(
            "%s size=%s seed=%d %s: weighted F1 %.4f macro F1 %.4f (%.0f s)",
            catalog,
            record["size"],
            seed,
            system,
            record["weighted_f1"],
            record["macro_f1"],
            record["seconds"],
        )
        yield record


def _key(r: dict[str, Any]) -> tuple[Any, ...]:
    return (r["catalog"], str(r["size"]), r["seed"], r["system"], json.dumps(r["overrides"]))


def table(records: list[dict[str, Any]]) -> str:
    """The Markdown table: one row per catalog and size, mean (spread) per system."""
    by_point: dict[tuple[str, str], dict[str, list[dict[str, Any]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for r in records:
        by_point[(r["catalog"], str(r["size"]))][r["system"]].append(r)

    def fmt(rs: list[dict[str, Any]], key: str) -> str:
        if not rs:
            return "–"
        values = [r[key] for r in rs]
        mean = statistics.fmean(values)
        if len(values) > 1:
            return f"{mean:.3f} ({min(values):.3f}-{max(values):.3f})"
        return f"{mean:.3f}"

    lines = [
        "| catalog | rows | seeds | leaves | prodcat wF1 | baseline wF1 | fastText wF1 "
        "| Δ wF1 | prodcat mF1 | baseline mF1 | fastText mF1 | prodcat s | baseline s "
        "| fastText s |",
        "|---|---:|---:|---:|---|---|---|---:|---|---|---|---:|---:|---:|",
    ]

    def order(item: tuple[tuple[str, str], Any]) -> tuple[str, float]:
        (catalog, size), _ = item
        return catalog, float("inf") if size == "all" else float(size)

    deltas: dict[str, list[float]] = defaultdict(list)
    for (catalog, _size), systems in sorted(by_point.items(), key=order):
        ours, base = systems.get("prodcat", []), systems.get("baseline", [])
        delta = ""
        if ours and base:
            d = statistics.fmean(r["weighted_f1"] for r in ours) - statistics.fmean(
                r["weighted_f1"] for r in base
            )
            deltas[catalog].append(d)
            delta = f"{100 * d:+.1f}"
        any_rs = next(iter(systems.values()))
        secs = [
            f"{statistics.fmean(r['seconds'] for r in systems[s]):.0f}" if systems.get(s) else "–"
            for s in SYSTEMS
        ]
        lines.append(
            f"| {catalog} | {any_rs[0]['rows']:,} | {len(any_rs)} | {any_rs[0]['classes']} "
            f"| {fmt(ours, 'weighted_f1')} | {fmt(base, 'weighted_f1')} "
            f"| {fmt(systems.get('fasttext', []), 'weighted_f1')} | {delta} "
            f"| {fmt(ours, 'macro_f1')} | {fmt(base, 'macro_f1')} "
            f"| {fmt(systems.get('fasttext', []), 'macro_f1')} | {' | '.join(secs)} |"
        )
    lines.append("")
    lines.append(
        "Mean Δ weighted F1 (points, prodcat - baseline) across each curve: "
        + ", ".join(f"{c} {100 * statistics.fmean(d):+.2f}" for c, d in sorted(deltas.items()))
    )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--catalogs", default="bigbasket,amazon_in_2023,cn_ecommerce_products")
    parser.add_argument("--sizes", default="2000,5000,10000,20000,50000,all")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per size up to 20,000 rows")
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--results", type=Path, default=RESULTS / "learning_curve.jsonl")
    parser.add_argument("--table", type=Path, default=RESULTS / "learning_curve.md")
    parser.add_argument("--fresh", action="store_true", help="ignore earlier results")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    overrides: dict[str, Any] = {}
    for item in args.set:
        key, _, value = item.partition("=")
        overrides[key] = json.loads(value)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    done: dict[tuple[Any, ...], dict[str, Any]] = {}
    if args.results.exists() and not args.fresh:
        for line in args.results.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            done[_key(record)] = record
    systems = [s for s in args.systems.split(",") if s]
    settings = load_settings()
    for catalog in [c for c in args.catalogs.split(",") if c]:
        rows, _ = load_examples(
            TrainConfig(data=(catalog,), data_dir=settings.data_dir, out=Path())
        )
        for token in args.sizes.split(","):
            size = None if token == "all" else int(token)
            if size is not None and size >= len(rows):
                continue  # the catalog is smaller: "all" covers it
            seeds = range(args.seeds if (size or len(rows)) <= MULTI_SEED_UP_TO else 1)
            for seed in seeds:
                todo = [
                    s
                    for s in systems
                    if (catalog, token, seed, s, json.dumps(overrides)) not in done
                ]
                if not todo:
                    continue
                for record in _point(catalog, size, seed, todo, overrides):
                    done[_key(record)] = record
                    with args.results.open("a", encoding="utf-8") as out:
                        out.write(json.dumps(record) + "\n")
    wanted = {json.dumps(overrides)}
    text = table([r for r in done.values() if json.dumps(r["overrides"]) in wanted])
    args.table.write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
