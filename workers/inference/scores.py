"""Quality figures that training, evaluation and the promotion gate share.

:func:`weighted_f1` is the figure the offline pipeline picks candidates by
(``export.training``), reports (``export.evaluation``) and the promotion gate compares
(:mod:`workers.lifecycle.gate`): one definition, pure Python, so the gate needs no
scikit-learn. It equals scikit-learn's ``f1_score(average="weighted")``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Sequence

__all__ = ["weighted_f1"]


def weighted_f1(truth: Sequence[Hashable], pred: Sequence[Hashable]) -> float:
    """F1 per true label, weighted by its support (scikit-learn's ``average='weighted'``).

    Labels are any hashable values (category paths, label indexes). A label's F1 is
    ``2 tp / (predicted + support)``; labels only ever predicted have no weight.
    """
    if len(truth) != len(pred):
        raise ValueError(f"{len(truth)} true labels but {len(pred)} predictions")
    if not truth:
        return 0.0
    support = Counter(truth)
    predicted = Counter(pred)
    hits = Counter(t for t, p in zip(truth, pred, strict=True) if t == p)
    total = 0.0
    for label, n in support.items():
        total += n * (2 * hits.get(label, 0) / (predicted.get(label, 0) + n))
    return total / len(truth)
