"""Training members: featurize, fit, refit on all rows, choose, calibrate.

A *member* is one network (an architecture and a seed). Each is trained on the training
split with early stopping on the validation split, which picks its number of epochs and
gives its validation probabilities; then, unless ``Hyper.refit`` is off, a fresh copy is
trained on the training and validation rows together for that many epochs (times
``Hyper.refit_epochs``, for the extra rows). The shipped model is the best single member
or average of members by validation weighted F1
(:func:`workers.inference.scores.weighted_f1`, the figure evaluation reports and the
promotion gate compares), with a softmax temperature fitted on validation data so its
confidences mean what they say. The whole offline run is :func:`export.pipeline.run`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from itertools import combinations
from typing import Any

import numpy as np
import numpy.typing as npt

from export.training.config import TrainConfig
from export.training.hyper import DataShape, Hyper, defaults_for, parse_candidate
from export.training.prepare import Prepared
from export.training.thresholds import choose_thresholds
from workers.core.product import ProductText
from workers.inference.featurizer import Featurizer
from workers.inference.hashing import run_script_share
from workers.inference.scores import weighted_f1
from workers.inference.spec import FeaturizerSpec
from workers.inference.taxonomy import Thresholds

__all__ = [
    "Choice",
    "Fitted",
    "Member",
    "calibrate",
    "choose",
    "class_weights",
    "data_shape",
    "featurize",
    "fit_model",
    "labels_of",
    "resolve",
    "temper",
    "train_member",
]

log = logging.getLogger("prodcat.train")

F32 = npt.NDArray[np.float32]
Feats = dict[str, npt.NDArray[np.int32]]


def featurize(featurizer: Featurizer, items: Sequence[ProductText]) -> Feats:
    """Model inputs for ``items``, computed in chunks of 4,096."""
    chunks: list[Feats] = []
    for start in range(0, len(items), 4096):
        chunks.append(featurizer.transform(items[start : start + 4096]))
    if not chunks:
        return featurizer.transform([])
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


def labels_of(prep: Prepared, idx: Sequence[int]) -> npt.NDArray[np.int64]:
    """Leaf indices of rows ``idx`` (-1 for a path the taxonomy does not have)."""
    index = prep.taxonomy.index()
    return np.array([index.get(prep.examples[i].path, -1) for i in idx], dtype=np.int64)


@dataclass
class Member:
    """One trained network: its validation probabilities (from the model that had not seen
    the validation rows), the final weights, and its probabilities on the parity probe."""

    name: str
    summary: dict[str, Any]
    val_probs: F32
    weights: Any  # export.training.networks.MemberWeights (imports TensorFlow)
    probe_probs: F32


def _idf(spec: FeaturizerSpec, feats: Feats, rows: npt.NDArray[np.int64]) -> tuple[F32, F32]:
    from export.training.networks import idf_weights

    return (
        idf_weights(feats["word_ids"][rows], spec.word_buckets),
        idf_weights(feats["char_ids"][rows], spec.char_buckets),
    )


def _fit_new(
    prep: Prepared,
    feats: Feats,
    spec: FeaturizerSpec,
    hyper: Hyper,
    rows: npt.NDArray[np.int64],
    y: npt.NDArray[np.int64],
    *,
    seed: int,
    verbose: int,
    val: tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]] | None = None,
    epochs: int | None = None,
) -> tuple[Any, Any]:
    """A new network trained on ``rows``: early stopping on ``val`` when neither
    ``epochs`` nor ``hyper.epochs`` is set, else a fixed schedule (``epochs`` of the
    ``hyper.epochs`` the learning rate decays over)."""
    import keras

    from export.training.fit import fit
    from export.training.networks import build

    keras.utils.set_random_seed(seed)
    n = len(prep.taxonomy)
    idf = _idf(spec, feats, rows) if hyper.architecture == "bag" else None
    model = build(spec, n, hyper, idf=idf)
    fixed = epochs if epochs is not None else hyper.epochs
    history = fit(
        model,
        {k: v[rows] for k, v in feats.items()},
        y,
        class_weights(y, n, hyper.class_weight_power),
        None if val is None else {k: v[val[0]] for k, v in feats.items()},
        None if val is None else val[1],
        learning_rate=hyper.learning_rate,
        batch_size=hyper.batch_size,
        max_epochs=hyper.max_epochs,
        patience=hyper.patience,
        seed=seed,
        epochs=fixed,
        decay=hyper.epochs is not None,
        decay_epochs=hyper.epochs,
        verbose=verbose,
        label_smoothing=hyper.label_smoothing,
    )
    return model, history


def train_member(
    prep: Prepared,
    feats: Feats,
    spec: FeaturizerSpec,
    hyper: Hyper,
    *,
    name: str,
    seed: int,
    probe: Sequence[int],
    verbose: int,
) -> Member:
    """Train candidate ``name`` (``ARCH`` or ``ARCH@K``: seed + K); see the module doc."""
    import keras

    from export.training.networks import member_weights, predict

    arch, offset = parse_candidate(name)
    hyper = replace(hyper, architecture=arch)
    seed += offset
    train = np.asarray(prep.train, dtype=np.int64)
    y_train = labels_of(prep, prep.train)
    y_val = labels_of(prep, prep.val)
    seen = np.asarray(prep.val, dtype=np.int64)[y_val >= 0]
    if seen.size == 0 and hyper.refit:
        raise ValueError("no validation row has a label seen in training")
    start = time.perf_counter()
    model, history = _fit_new(
        prep,
        feats,
        spec,
        hyper,
        train,
        y_train,
        seed=seed,
        verbose=verbose,
        val=(seen, y_val[y_val >= 0]),
    )
    val_probs = predict(model, feats, prep.val)
    pred = val_probs.argmax(axis=1)
    summary: dict[str, Any] = {
        "architecture": name,
        "hyper": hyper.to_dict(),
        "seed": seed,
        "epochs": len(history.loss),
        "best_epoch": history.best_epoch,
        "val_accuracy": float(np.mean(pred == y_val)),
        "val_weighted_f1": weighted_f1(y_val.tolist(), pred.tolist()),
        "params": int(model.count_params()),
    }
    if hyper.refit:
        epochs = max(1, round(history.best_epoch * hyper.refit_epochs))
        if hyper.epochs is not None:
            epochs = min(epochs, hyper.epochs)
        keras.backend.clear_session()
        rows = np.concatenate([train, seen])
        y_rows = np.concatenate([y_train, y_val[y_val >= 0]])
        model, _ = _fit_new(
            prep, feats, spec, hyper, rows, y_rows, seed=seed, verbose=verbose, epochs=epochs
        )
        summary["refit"] = {"rows": int(rows.size), "epochs": epochs}
    summary["train_seconds"] = round(time.perf_counter() - start, 1)
    member = Member(
        name=name,
        summary=summary,
        val_probs=val_probs,
        weights=member_weights(model),
        probe_probs=predict(model, feats, probe),
    )
    keras.backend.clear_session()
    return member


@dataclass(frozen=True)
class Choice:
    """What ships: the members (indices into the trained list) and their summary."""

    members: tuple[int, ...]
    summary: dict[str, Any]


def choose(prep: Prepared, members: Sequence[Member]) -> tuple[Choice, list[dict[str, Any]]]:
    """The best single member or average of two or more by validation weighted F1; on a
    tie, the one with fewer members (cheaper to serve). Returns it and every option's
    summary (singles first, then averages)."""
    y_val = labels_of(prep, prep.val).tolist()
    options: list[Choice] = [Choice((i,), m.summary) for i, m in enumerate(members)]
    for size in range(2, len(members) + 1):
        for combo in combinations(range(len(members)), size):
            pred = np.mean([members[i].val_probs for i in combo], axis=0).argmax(axis=1)
            summary = {
                "architecture": "ensemble(" + "+".join(members[i].name for i in combo) + ")",
                "val_accuracy": float(np.mean(pred == np.asarray(y_val))),
                "val_weighted_f1": weighted_f1(y_val, pred.tolist()),
            }
            options.append(Choice(combo, summary))
    best = max(options, key=lambda c: (c.summary["val_weighted_f1"], -len(c.members)))
    return best, [c.summary for c in options]


def temper(member_probs: Sequence[F32], temperature: float) -> F32:
    """The average of ``softmax(logits / t)`` over members, from their probabilities
    (``softmax(log p / t)`` equals ``softmax(logits / t)``): what the exported graph
    computes with the temperature folded in."""
    out = np.zeros_like(member_probs[0], dtype=np.float64)
    for p in member_probs:
        z = np.log(np.maximum(p.astype(np.float64), 1e-300)) / temperature
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        out += e / e.sum(axis=1, keepdims=True)
    return np.asarray(out / len(member_probs), dtype=np.float32)


def calibrate(member_probs: Sequence[F32], y: npt.NDArray[np.int64]) -> float:
    """The softmax temperature in [0.25, 4] that minimises the validation log loss of the
    averaged members (rows with an unseen label are left out); 1.0 without such rows."""
    seen = y >= 0
    if not seen.any():
        return 1.0
    probs = [p[seen] for p in member_probs]
    truth = y[seen]
    best_t, best_loss = 1.0, np.inf
    for t in np.exp(np.linspace(np.log(0.25), np.log(4.0), 57)):
        p = temper(probs, float(t))[np.arange(truth.size), truth]
        loss = float(-np.mean(np.log(np.maximum(p, 1e-12))))
        if loss < best_loss - 1e-9:
            best_t, best_loss = float(t), loss
    return round(best_t, 4)


def data_shape(prep: Prepared) -> DataShape:
    """What the rows the model learns from look like (for :func:`defaults_for`)."""
    rows = [prep.examples[i] for i in (*prep.train, *prep.val)]
    run_titles = sum(1 for e in rows if run_script_share(e.title) > 0.5)
    return DataShape(
        rows=len(rows),
        classes=len(prep.taxonomy),
        depth=prep.taxonomy.depth,
        run_script_share=round(run_titles / max(len(rows), 1), 3),
    )


def resolve(config: TrainConfig, shape: DataShape) -> tuple[Hyper, tuple[str, ...], list[str]]:
    """The run's hyper-parameters and candidates: the config's, else the data's defaults;
    then the explicit overrides (flags)."""
    hyper, candidates, reasons = defaults_for(shape)
    if config.hyper is not None:
        hyper, reasons = config.hyper, ["hyper-parameters given"]
    if config.candidates is not None:
        candidates = config.candidates
        reasons.append(f"candidates given: {','.join(candidates)}")
    overrides = dict(config.overrides)
    if config.max_epochs is not None:
        overrides["max_epochs"] = config.max_epochs
        if hyper.epochs is not None:
            overrides["epochs"] = min(hyper.epochs, config.max_epochs)
    if overrides:
        hyper = replace(hyper, **overrides)
        reasons.append("flags: " + ", ".join(f"{k}={v}" for k, v in sorted(overrides.items())))
    return hyper, candidates, reasons


@dataclass
class Fitted:
    """A trained model, before export: every member, the chosen ones, calibration."""

    members: list[Member]
    choice: Choice
    options: list[dict[str, Any]]
    temperature: float
    thresholds: Thresholds
    hyper: Hyper
    shape: DataShape
    reasons: list[str]

    @property
    def chosen(self) -> list[Member]:
        return [self.members[i] for i in self.choice.members]


def fit_model(
    config: TrainConfig, prep: Prepared, feats: Feats, *, probe: Sequence[int], verbose: int
) -> Fitted:
    """Train every candidate, choose, calibrate and fit the back-off thresholds."""
    shape = data_shape(prep)
    hyper, candidates, reasons = resolve(config, shape)
    log.info(
        "split: train=%d val=%d test=%d leaves=%d depth=%d; %s",
        len(prep.train),
        len(prep.val),
        len(prep.test),
        len(prep.taxonomy),
        prep.taxonomy.depth,
        "; ".join(reasons),
    )
    members = []
    for name in candidates:
        log.info("training candidate %s", name)
        member = train_member(
            prep,
            feats,
            config.spec,
            hyper,
            name=name,
            seed=config.seed,
            probe=probe,
            verbose=verbose,
        )
        log.info("candidate %s: %s", name, json.dumps(member.summary))
        members.append(member)
    choice, options = choose(prep, members)
    chosen = [members[i] for i in choice.members]
    log.info("chosen by validation weighted F1: %s", choice.summary["architecture"])
    temperature = calibrate([m.val_probs for m in chosen], labels_of(prep, prep.val))
    thresholds = choose_thresholds(
        prep.taxonomy,
        temper([m.val_probs for m in chosen], temperature),
        [prep.examples[i].path for i in prep.val],
        config.target_precision,
    )
    return Fitted(members, choice, options, temperature, thresholds, hyper, shape, reasons)
