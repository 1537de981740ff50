"""Training candidates: featurize, fit each architecture, score them and their ensembles.

The networks are in :mod:`export.training.networks`, the fit loop in
:mod:`export.training.fit`; candidates are compared by validation weighted F1
(:func:`workers.inference.scores.weighted_f1`, the figure evaluation reports and the
promotion gate compares). The whole offline run is :func:`export.pipeline.run`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from export.training.hyper import Hyper
from export.training.prepare import Prepared
from workers.core.product import ProductText
from workers.inference.featurizer import Featurizer
from workers.inference.scores import weighted_f1
from workers.inference.spec import FeaturizerSpec

__all__ = ["class_weights", "ensemble_scores", "featurize", "train_candidate"]


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
    return weighted_f1(truth.tolist(), pred.tolist())


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
