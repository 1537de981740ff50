"""The offline pipeline: load, clean, split, train candidates, pick, export, evaluate.

``prodcat train --data bigbasket --out var/bundles`` runs all of it and leaves a
verified bundle directory (ONNX + JSON + report). The evaluation is done on the
exported bundle through :class:`workers.inference.model.Classifier`, the same code the
workers serve with, on a test split grouped by normalized title.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from export.data.catalog import Example, load_catalog_file
from export.data.datasets import DATASETS, load_dataset
from export.data.sources import fingerprint
from export.data.splits import bucket, deduplicate, grouped_split
from export.errors import ExportError
from export.training.hyper import DEFAULT_CANDIDATES, Hyper, parse_candidate
from workers.inference.bundle import BUNDLE_FORMAT, METADATA_FILE, MODEL_FILE, write_manifest
from workers.inference.featurizer import Featurizer, FeaturizerSpec, ProductText
from workers.inference.taxonomy import Taxonomy

log = logging.getLogger("prodcat.train")

_PACKAGES = (
    "prodcat",
    "tensorflow-cpu",
    "tensorflow",
    "keras",
    "tf2onnx",
    "onnx",
    "onnxruntime",
    "numpy",
    "scikit-learn",
)


@dataclass(frozen=True)
class TrainConfig:
    """What to train on and how. Every field is a ``prodcat train`` flag."""

    data: tuple[str, ...]
    data_dir: Path
    out: Path
    candidates: tuple[str, ...] = DEFAULT_CANDIDATES
    seed: int = 0
    test_frac: float = 0.2
    val_frac: float = 0.1
    limit: int | None = None
    max_epochs: int | None = None
    target_precision: float = 0.9
    baseline: bool = True
    labels: tuple[Path, ...] = ()
    version: str | None = None
    spec: FeaturizerSpec = field(default_factory=FeaturizerSpec)
    hyper: Hyper = field(default_factory=Hyper)
    verbose: int | None = None


@dataclass
class Prepared:
    """Examples after cleaning, split and featurized."""

    examples: list[Example]
    train: list[int]
    val: list[int]
    test: list[int]
    taxonomy: Taxonomy
    reports: list[dict[str, Any]]
    split: dict[str, Any]
    fingerprint: str


def to_text(example: Example) -> ProductText:
    return ProductText(
        title=example.title,
        brand=example.brand,
        description=example.description,
        attributes=example.attributes,
    )


def merge_labels(catalog: Sequence[Example], labels: Sequence[Example]) -> list[Example]:
    """Apply corrections: a label row replaces the catalog row with the same product_id,
    unless the catalog's own label is newer (both carry ``label_time``). Among several
    label rows for one product, the newest wins (file order breaks ties)."""
    newest: dict[str, Example] = {}
    for row in labels:
        old = newest.get(row.product_id)
        if old is None or _not_older(row, old):
            newest[row.product_id] = row
    merged: list[Example] = []
    for ex in catalog:
        label = newest.get(ex.product_id)
        if label is not None and _not_older(label, ex):
            merged.append(replace(ex, path=label.path, label_time=label.label_time))
            del newest[ex.product_id]
        else:
            merged.append(ex)
            if label is not None:  # the catalog's own label is newer than the correction
                del newest[ex.product_id]
    return merged + list(newest.values())


def _not_older(a: Example, b: Example) -> bool:
    if a.label_time is None or b.label_time is None:
        return True
    return a.label_time >= b.label_time


def sample_rows(rows: Sequence[Example], n: int, seed: int) -> list[Example]:
    """A seeded sample of ``n`` rows spread over the whole file (files are often sorted
    by class, so the first ``n`` rows would cover only a few classes). Order is kept."""
    ranked = sorted(range(len(rows)), key=lambda i: bucket(seed, f"{i}\x1f{rows[i].title}"))
    return [rows[i] for i in sorted(ranked[:n])]


def load_examples(config: TrainConfig) -> tuple[list[Example], list[dict[str, Any]]]:
    """Catalogs named by ``--data`` (dataset names or CSV/JSONL files), then labels files.

    A labels file (for example one exported from the ``category.labels`` topic)
    overrides the catalog's label for the same product_id: newer corrections win.
    """
    examples: list[Example] = []
    reports: list[dict[str, Any]] = []
    for item in config.data:
        if item in DATASETS:
            rows, report = load_dataset(item, config.data_dir)
        else:
            rows, report = load_catalog_file(Path(item))
        log.info("%s", report.summary())
        if config.limit is not None and len(rows) > config.limit:
            rows = sample_rows(rows, config.limit, config.seed)
            log.info("sampled %d rows of %s (seed %d)", len(rows), item, config.seed)
        examples.extend(rows)
        reports.append(report.as_dict())
    for path in config.labels:
        rows, report = load_catalog_file(path)
        log.info("labels: %s", report.summary())
        reports.append(report.as_dict())
        examples = merge_labels(examples, rows)
    if not examples:
        raise ExportError(f"no usable rows in {', '.join(config.data)}; check --data")
    return examples, reports


def prepare(config: TrainConfig) -> Prepared:
    examples, reports = load_examples(config)
    examples, dedup = deduplicate(examples)
    reports.append({"dedup": dedup.as_dict()})
    split = grouped_split(
        examples, test_frac=config.test_frac, val_frac=config.val_frac, seed=config.seed
    )
    taxonomy = Taxonomy.from_unsorted([examples[i].path for i in split.train])
    known = set(taxonomy.leaves)
    train = [i for i in split.train if examples[i].path in known]
    return Prepared(
        examples=examples,
        train=train,
        val=list(split.val),
        test=list(split.test),
        taxonomy=taxonomy,
        reports=reports,
        split=split.describe(),
        fingerprint=fingerprint(examples),
    )


def featurize(
    featurizer: Featurizer, items: Sequence[ProductText]
) -> dict[str, npt.NDArray[np.int32]]:
    chunks: list[dict[str, npt.NDArray[np.int32]]] = []
    for start in range(0, len(items), 4096):
        chunks.append(featurizer.transform(items[start : start + 4096]))
    return {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}


def class_weights(
    labels: npt.NDArray[np.int64], n_labels: int, power: float = 0.5
) -> npt.NDArray[np.float32]:
    """Per-sample weights ~ (1/frequency)^power, normalised to mean 1, clipped to [0.1, 10]."""
    counts = np.bincount(labels, minlength=n_labels).astype(np.float64)
    per_class = np.where(counts > 0, (counts.sum() / np.maximum(counts, 1)) ** power, 0.0)
    weights: npt.NDArray[np.float64] = per_class[labels]
    weights = weights / weights.mean()
    return np.asarray(np.clip(weights, 0.1, 10.0), dtype=np.float32)


def _labels(prep: Prepared, idx: Sequence[int]) -> npt.NDArray[np.int64]:
    index = prep.taxonomy.index()
    return np.array([index.get(prep.examples[i].path, -1) for i in idx], dtype=np.int64)


def _weighted_f1(truth: npt.NDArray[np.int64], pred: npt.NDArray[np.int64]) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(truth, pred, average="weighted", zero_division=0))


def train_candidate(
    prep: Prepared,
    feats: dict[str, npt.NDArray[np.int32]],
    spec: FeaturizerSpec,
    hyper: Hyper,
    *,
    seed: int,
    verbose: int,
    name: str | None = None,
) -> tuple[Any, dict[str, Any], npt.NDArray[np.float32]]:
    """Train one architecture with early stopping on the validation split; also
    returns its probabilities on every validation row."""
    import keras

    from export.training.fit import fit
    from export.training.networks import build

    keras.utils.set_random_seed(seed)
    n = len(prep.taxonomy)
    y_train = _labels(prep, prep.train)
    y_val = _labels(prep, prep.val)
    seen_val = y_val >= 0
    x_train = {k: v[prep.train] for k, v in feats.items()}
    x_val = {k: v[np.asarray(prep.val)[seen_val]] for k, v in feats.items()}
    model = build(spec, n, hyper, name=name)
    start = time.perf_counter()
    history = fit(
        model,
        x_train,
        y_train,
        class_weights(y_train, n, hyper.class_weight_power),
        x_val,
        y_val[seen_val],
        learning_rate=hyper.learning_rate,
        batch_size=hyper.batch_size,
        max_epochs=hyper.max_epochs,
        patience=hyper.patience,
        seed=seed,
        verbose=verbose,
        label_smoothing=hyper.label_smoothing,
    )
    seconds = time.perf_counter() - start
    x_val_all = {k: v[prep.val] for k, v in feats.items()}
    val_probs = np.asarray(model.predict(x_val_all, batch_size=2048, verbose=0))
    pred = val_probs.argmax(axis=1)
    summary: dict[str, Any] = {
        "architecture": hyper.architecture,
        "hyper": hyper.to_dict(),
        "epochs": len(history.loss),
        "best_epoch": history.best_epoch,
        "train_seconds": round(seconds, 1),
        "val_accuracy": float(np.mean(pred == y_val)),
        "val_weighted_f1": _weighted_f1(y_val, pred),
        "params": int(model.count_params()),
    }
    return model, summary, val_probs


def ensemble_scores(
    prep: Prepared, names: Sequence[str], val_probs: Sequence[npt.NDArray[np.float32]]
) -> list[tuple[tuple[int, ...], dict[str, Any]]]:
    """Validation scores of every average of two or more trained candidates.

    The average of probabilities is computed here in numpy; only the chosen
    combination is built as one exportable model (:func:`export.training.networks.average`).
    """
    from itertools import combinations

    y_val = _labels(prep, prep.val)
    out: list[tuple[tuple[int, ...], dict[str, Any]]] = []
    for size in range(2, len(names) + 1):
        for members in combinations(range(len(names)), size):
            pred = np.mean([val_probs[i] for i in members], axis=0).argmax(axis=1)
            summary = {
                "architecture": "ensemble(" + "+".join(names[i] for i in members) + ")",
                "val_accuracy": float(np.mean(pred == y_val)),
                "val_weighted_f1": _weighted_f1(y_val, pred),
            }
            out.append((members, summary))
    return out


def package_versions() -> dict[str, str]:
    out: dict[str, str] = {}
    for name in _PACKAGES:
        try:
            out[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            continue
    return out


def make_version(config: TrainConfig, fp: str) -> str:
    if config.version:
        return config.version
    name = "-".join(Path(d).stem if d not in DATASETS else d for d in config.data)
    stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    return f"{name}-{stamp}-{fp[:8]}"


def _release_tensorflow() -> None:
    import gc

    import keras

    keras.backend.clear_session()
    gc.collect()


def _write_metadata(root: Path, meta: dict[str, Any]) -> None:
    text = json.dumps(meta, ensure_ascii=False, indent=2) + "\n"
    (root / METADATA_FILE).write_text(text, encoding="utf-8")


def run(config: TrainConfig) -> Path:
    """Run the whole pipeline; returns the bundle directory."""
    from export.evaluation.evaluate import evaluate_bundle
    from export.training.networks import for_serving
    from export.training.onnx_export import ONNX_OPSET, parity, to_onnx
    from export.training.thresholds import choose_thresholds

    verbose = config.verbose if config.verbose is not None else (1 if sys.stdout.isatty() else 2)
    t_start = time.perf_counter()
    prep = prepare(config)
    log.info(
        "split: train=%d val=%d test=%d leaves=%d depth=%d",
        len(prep.train),
        len(prep.val),
        len(prep.test),
        len(prep.taxonomy),
        prep.taxonomy.depth,
    )
    featurizer = Featurizer(config.spec)
    feats = featurize(featurizer, [to_text(e) for e in prep.examples])

    candidates: list[dict[str, Any]] = []
    members: list[tuple[int, ...]] = []
    models: list[Any] = []
    probs: list[npt.NDArray[np.float32]] = []
    for name in config.candidates:
        arch, seed_offset = parse_candidate(name)  # "fasttext@1": fasttext, seed + 1
        hyper = replace(config.hyper, architecture=arch)
        if config.max_epochs is not None:
            hyper = replace(hyper, max_epochs=config.max_epochs)
        log.info("training candidate %s", name)
        model, summary, val_probs = train_candidate(
            prep,
            feats,
            config.spec,
            hyper,
            seed=config.seed + seed_offset,
            verbose=verbose,
            name=name.replace("@", "_seed"),
        )
        summary["architecture"] = name
        log.info("candidate %s: %s", name, json.dumps(summary))
        members.append((len(models),))
        candidates.append(summary)
        models.append(model)
        probs.append(val_probs)
    for combo, summary in ensemble_scores(prep, config.candidates, probs):
        log.info("candidate %s: %s", summary["architecture"], json.dumps(summary))
        members.append(combo)
        candidates.append(summary)
    best = max(range(len(candidates)), key=lambda i: candidates[i]["val_weighted_f1"])
    chosen = candidates[best]
    if len(members[best]) == 1:
        best_model = models[members[best][0]]
    else:
        from export.training.networks import average

        best_model = average([models[i] for i in members[best]])
        chosen["params"] = int(best_model.count_params())
    log.info("chosen by validation weighted F1: %s", chosen["architecture"])
    # The members' validation probabilities are already known; the ensemble is their mean.
    val_probs = np.mean([probs[i] for i in members[best]], axis=0).astype(np.float32)
    thresholds = choose_thresholds(
        prep.taxonomy, val_probs, [prep.examples[i].path for i in prep.val], config.target_precision
    )

    fp = prep.fingerprint
    version = make_version(config, fp)
    root = config.out / version
    root.mkdir(parents=True, exist_ok=False)
    # Parity on real held-out rows: the trained model, its serving form (padding rows
    # zeroed, see networks.for_serving) and the exported ONNX must all agree.
    probe = {k: v[prep.test[:512] or prep.val[:512]] for k, v in feats.items()}
    reference = np.asarray(best_model.predict(probe, batch_size=512, verbose=0))
    best_model = for_serving(best_model)
    to_onnx(best_model, root / MODEL_FILE)
    served = np.asarray(best_model.predict(probe, batch_size=512, verbose=0))
    max_diff = max(
        parity(best_model, root / MODEL_FILE, probe), float(np.abs(served - reference).max())
    )
    if max_diff > 1e-5:
        raise ExportError(f"ONNX parity check failed: max |keras - onnx| = {max_diff:.2e} > 1e-5")
    train_seconds = time.perf_counter() - t_start
    meta: dict[str, Any] = {
        "format": BUNDLE_FORMAT,
        "version": version,
        "created_at": datetime.now(UTC).isoformat(),
        "labels": [list(p) for p in prep.taxonomy.leaves],
        "featurizer": config.spec.to_dict(),
        "thresholds": thresholds.to_dict(),
        "onnx": {
            "opset": ONNX_OPSET,
            "inputs": ["word_ids", "char_ids"],
            "output": "probs",
            "parity_max_abs_diff": max_diff,
        },
        "model": {"chosen": chosen["architecture"], "candidates": candidates},
        "data": {
            "sources": list(config.data),
            "labels_files": [str(p) for p in config.labels],
            "fingerprint": fp,
            "split": prep.split,
            "rows": {"train": len(prep.train), "val": len(prep.val), "test": len(prep.test)},
            "load_reports": prep.reports,
            "leaf_counts": dict(
                Counter(" > ".join(prep.examples[i].path) for i in prep.train).most_common(20)
            ),
        },
        "packages": package_versions(),
        "train_seconds": round(train_seconds, 1),
    }
    _write_metadata(root, meta)
    write_manifest(root)
    # TensorFlow's share of memory is not needed any more; the baseline needs room.
    del models, best_model, feats
    _release_tensorflow()
    # Evaluate the exported bundle through the serving code, then seal it again
    # with the evaluation and the report inside.
    meta["evaluation"] = evaluate_bundle(root, prep, config)
    _write_metadata(root, meta)
    write_manifest(root)
    log.info("bundle %s written in %.0f s", root, time.perf_counter() - t_start)
    return root
