"""Choose the back-off thresholds on validation data for a target precision.

For the leaf level and for every ancestor depth, the threshold is the lowest
confidence at which the answers at that level, counted from the most confident
down, still reach the target precision. Ancestor thresholds are fitted on the
items the deeper levels left unanswered, since those are the only ones that
reach them. A level that never reaches it gets a
threshold above 1, so it is never used; the item then backs off further or
abstains. Thresholds are saved in the bundle and applied by
:meth:`workers.inference.taxonomy.Taxonomy.decode`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from workers.inference.taxonomy import Taxonomy, Thresholds

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
    confidence = probs.max(axis=1)
    leaf = _threshold_for(confidence, best == leaf_true, target_precision)
    # Back-off only ever sees the items the deeper levels did not answer, so each
    # ancestor threshold is fitted on exactly that residual, deepest level first, the
    # way Taxonomy.decode walks up.
    pending = confidence < leaf
    by_depth: dict[int, float] = {}
    for depth in range(taxonomy.depth - 1, 0, -1):
        nodes = taxonomy.nodes_at(depth)
        level = taxonomy.level_scores(probs, depth)
        arg = level.argmax(axis=1)
        score = level.max(axis=1)
        correct = np.array(
            [nodes[a] == tuple(t[:depth]) for a, t in zip(arg.tolist(), truth, strict=True)]
        )
        threshold = _threshold_for(score[pending], correct[pending], target_precision)
        by_depth[depth] = threshold
        pending &= score < threshold
    return Thresholds(leaf=leaf, by_depth=by_depth, target_precision=target_precision)
