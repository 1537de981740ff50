"""Evaluation metrics for path classifiers: flat, top-k, hierarchical, abstention.

Pure numpy + scikit-learn; used for our model and the baseline alike so the
two columns of every report are computed the same way. Weighted F1 is the one
definition training and the promotion gate use too
(:func:`workers.inference.scores.weighted_f1`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from sklearn.metrics import precision_recall_fscore_support

from workers.inference import scores

Path_ = tuple[str, ...]
IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Scores:
    n: int
    accuracy: float
    weighted_precision: float
    weighted_recall: float
    weighted_f1: float
    macro_precision: float
    macro_recall: float
    macro_f1: float
    top3_accuracy: float | None
    hier_precision: float
    hier_recall: float
    hier_f1: float
    top_level_accuracy: float
    coverage_at_95: float | None

    def as_dict(self) -> dict[str, float | int | None]:
        return dict(self.__dict__)


def hierarchical_prf(truth: Sequence[Path_], pred: Sequence[Path_]) -> tuple[float, float, float]:
    """Micro hierarchical P/R/F1 over path prefixes (Kiritchenko et al.)."""
    inter = pred_total = true_total = 0
    for t, p in zip(truth, pred, strict=True):
        common = 0
        for a, b in zip(t, p, strict=False):
            if a != b:
                break
            common += 1
        inter += common
        pred_total += len(p)
        true_total += len(t)
    hp = inter / pred_total if pred_total else 0.0
    hr = inter / true_total if true_total else 0.0
    hf = 2 * hp * hr / (hp + hr) if hp + hr else 0.0
    return hp, hr, hf


def coverage_precision_curve(
    confidence: npt.NDArray[np.floating], correct: npt.NDArray[np.bool_]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Coverage and precision when only items with confidence >= t are answered.

    Returns (thresholds, coverage, precision), thresholds descending.
    """
    order = np.argsort(-confidence, kind="stable")
    conf = confidence[order].astype(np.float64)
    hits = np.cumsum(correct[order].astype(np.float64))
    answered = np.arange(1, len(conf) + 1, dtype=np.float64)
    return conf, answered / max(len(conf), 1), hits / answered


def coverage_at_precision(
    confidence: npt.NDArray[np.floating], correct: npt.NDArray[np.bool_], target: float
) -> float:
    """Largest share of items that can be answered with precision >= target."""
    if len(confidence) == 0:
        return 0.0
    _, coverage, precision = coverage_precision_curve(confidence, correct)
    ok = np.flatnonzero(precision >= target)
    return float(coverage[ok[-1]]) if ok.size else 0.0


def score(
    truth: Sequence[Path_],
    pred: Sequence[Path_],
    *,
    top3_hit: npt.NDArray[np.bool_] | None = None,
    confidence: npt.NDArray[np.floating] | None = None,
) -> Scores:
    """All headline figures for predicted leaf paths against the truth."""
    t_str = ["\x1f".join(p) for p in truth]
    p_str = ["\x1f".join(p) for p in pred]
    labels = sorted(set(t_str))
    wp, wr, _, _ = precision_recall_fscore_support(
        t_str, p_str, labels=labels, average="weighted", zero_division=0
    )
    mp, mr, mf, _ = precision_recall_fscore_support(
        t_str, p_str, labels=labels, average="macro", zero_division=0
    )
    correct = np.array([a == b for a, b in zip(t_str, p_str, strict=True)])
    hp, hr, hf = hierarchical_prf(truth, pred)
    top_ok = np.mean([a[:1] == b[:1] for a, b in zip(truth, pred, strict=True)])
    cov = (
        coverage_at_precision(np.asarray(confidence), correct, 0.95)
        if confidence is not None
        else None
    )
    return Scores(
        n=len(truth),
        accuracy=float(correct.mean()) if len(correct) else 0.0,
        weighted_precision=float(wp),
        weighted_recall=float(wr),
        weighted_f1=scores.weighted_f1(t_str, p_str),
        macro_precision=float(mp),
        macro_recall=float(mr),
        macro_f1=float(mf),
        top3_accuracy=float(top3_hit.mean()) if top3_hit is not None else None,
        hier_precision=hp,
        hier_recall=hr,
        hier_f1=hf,
        top_level_accuracy=float(top_ok),
        coverage_at_95=cov,
    )


def per_class(truth: Sequence[Path_], pred: Sequence[Path_]) -> list[dict[str, object]]:
    """Precision, recall, F1 and support per true class, largest support first."""
    t_str = [" > ".join(p) for p in truth]
    p_str = [" > ".join(p) for p in pred]
    labels = sorted(set(t_str))
    p, r, f, s = precision_recall_fscore_support(
        t_str, p_str, labels=labels, average=None, zero_division=0
    )
    rows = [
        {"class": lab, "precision": float(a), "recall": float(b), "f1": float(c), "support": int(d)}
        for lab, a, b, c, d in zip(labels, p, r, f, s, strict=True)
    ]
    rows.sort(key=lambda row: (-int(str(row["support"])), str(row["class"])))
    return rows


def confused_pairs(
    truth: Sequence[Path_], pred: Sequence[Path_], depth: int = 1, top: int = 10
) -> list[tuple[str, str, int]]:
    """The most frequent (true, predicted) mistakes at a given depth."""
    pairs: Counter[tuple[str, str]] = Counter()
    for t, p in zip(truth, pred, strict=True):
        a, b = " > ".join(t[:depth]), " > ".join(p[:depth])
        if a != b:
            pairs[(a, b)] += 1
    return [(a, b, n) for (a, b), n in pairs.most_common(top)]


def confusion_matrix(
    truth: Sequence[Path_], pred: Sequence[Path_], depth: int = 1, top: int = 12
) -> tuple[list[str], npt.NDArray[np.int64]]:
    """Confusion counts among the ``top`` most frequent classes at ``depth``."""
    t = [" > ".join(p[:depth]) for p in truth]
    p = [" > ".join(q[:depth]) for q in pred]
    classes = [c for c, _ in Counter(t).most_common(top)]
    index = {c: i for i, c in enumerate(classes)}
    matrix = np.zeros((len(classes), len(classes)), dtype=np.int64)
    for a, b in zip(t, p, strict=True):
        if a in index and b in index:
            matrix[index[a], index[b]] += 1
    return classes, matrix
