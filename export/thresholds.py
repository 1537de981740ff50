"""Choose the back-off thresholds on validation data for a target precision.

For the leaf level and for every ancestor depth, the threshold is the lowest
confidence at which the answers at that level, counted from the most confident
down, still reach the target precision. A level that never reaches it gets a
threshold above 1, so it is never used; the item then backs off further or
abstains. Thresholds are saved in the bundle and applied by
:meth:`workers.taxonomy.Taxonomy.decode`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from workers.taxonomy import Taxonomy, Thresholds

NEVER = 1.01


def _threshold_for(
    confidence: npt.NDArray[np.floating], correct: npt.NDArray[np.bool_], target: float
) -> float:
    if confidence.size == 0:
        return NEVER
    order = np.argsort(-confidence, kind="stable")
    conf = confidence[order]
    precision = np.cumsum(correct[order]) / np.arange(1, conf.size + 1)
    ok = np.flatnonzero(precision >= target)
    if ok.size == 0:
        return NEVER
    # Deepest cut that keeps precision >= target; ties at the same confidence
    # are all answered, so step to the confidence itself.
    return float(conf[ok[-1]])


def choose_thresholds(
    taxonomy: Taxonomy,
    probs: npt.NDArray[np.float32],
    truth: Sequence[tuple[str, ...]],
    target_precision: float,
) -> Thresholds:
    """Per-depth thresholds reaching ``target_precision`` on (probs, truth)."""
    index = taxonomy.index()
    leaf_true = np.array([index.get(tuple(p), -1) for p in truth])
    best = probs.argmax(axis=1)
    leaf = _threshold_for(probs.max(axis=1), best == leaf_true, target_precision)
    by_depth: dict[int, float] = {}
    for depth in range(1, taxonomy.depth):
        nodes = taxonomy.nodes_at(depth)
        level = taxonomy.level_scores(probs, depth)
        arg = level.argmax(axis=1)
        predicted = [nodes[i] for i in arg.tolist()]
        correct = np.array([p == tuple(t[:depth]) for p, t in zip(predicted, truth, strict=True)])
        by_depth[depth] = _threshold_for(level.max(axis=1), correct, target_precision)
    return Thresholds(leaf=leaf, by_depth=by_depth, target_precision=target_precision)
