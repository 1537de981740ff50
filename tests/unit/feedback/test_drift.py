"""workers.feedback.drift: the PSI of predicted categories against the training prior."""

from __future__ import annotations

import numpy as np
import pytest

from workers.core.categories import format_path
from workers.feedback.drift import MIN_PREDICTIONS, min_predictions, prior_of, psi

LEAVES = [
    ("Beverages", "Tea", "Green Tea"),
    ("Beverages", "Coffee", "Instant Coffee"),
    ("Foodgrains, Oil & Masala", "Atta, Flours & Sooji", "Atta Whole Wheat"),
    ("Beauty & Hygiene", "Hair Care", "Shampoo & Conditioner"),
]
NAMES = [format_path(leaf) for leaf in LEAVES]
COUNTS = dict(zip(NAMES, [400, 300, 200, 100], strict=True))


def _sample(shares: list[float], n: int, seed: int) -> dict[str, int]:
    drawn = np.random.default_rng(seed).multinomial(n, shares)
    return {name: int(k) for name, k in zip(NAMES, drawn, strict=True)}


def test_prior_needs_every_leaf() -> None:
    prior = prior_of(LEAVES, COUNTS)
    assert prior is not None and prior[NAMES[0]] == pytest.approx(0.4)
    assert sum(prior.values()) == pytest.approx(1.0)
    top_only = {name: n for name, n in COUNTS.items() if n >= 200}  # an older bundle
    assert prior_of(LEAVES, top_only) is None
    assert prior_of([], COUNTS) is None


def test_the_same_distribution_is_stable_and_a_shift_is_large() -> None:
    prior = prior_of(LEAVES, COUNTS)
    assert prior is not None
    same = psi(_sample([0.4, 0.3, 0.2, 0.1], 5000, seed=1), prior)
    moved = psi(_sample([0.1, 0.2, 0.3, 0.4], 5000, seed=2), prior)
    print(f"\nPSI same distribution {same:.4f}, reversed {moved:.4f}")
    assert same is not None and same < 0.01
    assert moved is not None and moved > 0.25


def test_the_minimum_grows_with_the_categories() -> None:
    assert min_predictions(4) == MIN_PREDICTIONS
    assert min_predictions(545) == 20 * 545
    # why: equal distributions over many categories, sampled at the minimum, stay quiet
    names = [f"Grocery > Aisle {i}" for i in range(545)]
    prior = dict.fromkeys(names, 1 / 545)
    drawn = np.random.default_rng(5).multinomial(min_predictions(545), [1 / 545] * 545)
    noise = psi(dict(zip(names, (int(k) for k in drawn), strict=True)), prior)
    assert noise is not None and noise < 0.1


def test_too_few_predictions_give_no_value_and_unknown_categories_count() -> None:
    prior = prior_of(LEAVES, COUNTS)
    assert prior is not None
    assert psi(_sample([0.4, 0.3, 0.2, 0.1], MIN_PREDICTIONS - 1, seed=3), prior) is None
    observed = _sample([0.4, 0.3, 0.2, 0.1], 5000, seed=4)
    base = psi(observed, prior)
    observed["Beverages > Tea > Matcha (new)"] = 1000  # overrides filed under a new category
    with_new = psi(observed, prior)
    assert base is not None and with_new is not None and with_new > base + 0.25
