"""Drift of the live model's answers from what it was trained on: the population stability
index (PSI) of the categories it predicts against the training prior. Pure code.

The prior is the share of each leaf among the bundle's training rows
(``metadata.json`` ``data.leaf_counts``, complete for bundles trained since this metric
existed). The observed distribution is the feedback app's count of the version's predictions
per category (the quality table's ``c`` keys). Rule of thumb: PSI below 0.1 is stable, 0.1 to
0.25 a moderate shift, above 0.25 a large one (the catalog or the traffic changed, or the
model answers differently than it did on its validation data): retrain, or look at which
categories moved ("Predictions per category" on the dashboard).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Final

from workers.core.categories import format_path

__all__ = ["MIN_PREDICTIONS", "PER_CATEGORY", "min_predictions", "prior_of", "psi"]

MIN_PREDICTIONS: Final = 500
"""Fewest predictions that give a PSI, and at least :data:`PER_CATEGORY` per category."""
PER_CATEGORY: Final = 20
"""Sampling alone gives a PSI of about (categories - 1) / predictions: with 20 predictions
per category that noise stays near 0.05, well below the 0.25 of a large shift."""
EPSILON: Final = 1e-4
"""Floor of each share, so a category never seen on one side gives a finite term."""


def prior_of(
    leaves: list[tuple[str, ...]] | tuple[tuple[str, ...], ...], leaf_counts: Mapping[str, int]
) -> dict[str, float] | None:
    """The training share of every leaf (formatted path to share), or None when the counts
    do not cover every leaf (bundles that stored only the largest ones)."""
    names = [format_path(leaf) for leaf in leaves]
    if not names or any(leaf_counts.get(n, 0) <= 0 for n in names):
        return None
    total = sum(leaf_counts[n] for n in names)
    return {n: leaf_counts[n] / total for n in names}


def psi(observed: Mapping[str, int], prior: Mapping[str, float]) -> float | None:
    """PSI of ``observed`` counts (category to predictions) against ``prior`` shares; None
    below :func:`min_predictions`. Categories outside the prior count as one extra bucket."""
    total = sum(observed.values())
    if total < min_predictions(len(prior)):
        return None
    value = 0.0
    outside = sum(n for category, n in observed.items() if category not in prior)
    for category, expected in prior.items():
        actual = observed.get(category, 0) / total
        value += _term(actual, expected)
    if outside:
        value += _term(outside / total, 0.0)
    return value


def min_predictions(categories: int) -> int:
    """Predictions a PSI over ``categories`` needs (sampling noise below about 0.05)."""
    return max(MIN_PREDICTIONS, PER_CATEGORY * categories)


def _term(actual: float, expected: float) -> float:
    a, e = max(actual, EPSILON), max(expected, EPSILON)
    return (a - e) * math.log(a / e)
