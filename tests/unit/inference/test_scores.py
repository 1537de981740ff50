"""workers.inference.scores: the one weighted F1 of training, evaluation and the gate."""

from __future__ import annotations

import random

import pytest
from sklearn.metrics import f1_score

from workers.inference.scores import weighted_f1


def test_hand_computed() -> None:
    truth = [("A",), ("A",), ("B",), ("C",)]
    pred = [("A",), ("B",), ("B",), ("A",)]
    # A: tp 1, 2 true, 2 predicted -> 0.5; B: tp 1, 1 true, 2 predicted -> 2/3; C: 0
    assert weighted_f1(truth, pred) == pytest.approx((2 * 0.5 + 1 * 2 / 3 + 0) / 4)
    assert weighted_f1(truth, truth) == 1.0
    assert weighted_f1([], []) == 0.0


@pytest.mark.parametrize("seed", range(5))
def test_equals_scikit_learn(seed: int) -> None:
    rng = random.Random(seed)
    labels = [-1, *range(12)]  # -1: a label training never saw, as in validation rows
    truth = [rng.choice(labels) for _ in range(500)]
    pred = [t if rng.random() < 0.6 else rng.choice(labels) for t in truth]
    expected = f1_score(truth, pred, average="weighted", zero_division=0)
    assert weighted_f1(truth, pred) == pytest.approx(expected, abs=1e-12)


def test_lengths_must_match() -> None:
    with pytest.raises(ValueError, match="3 true labels but 2 predictions"):
        weighted_f1([1, 2, 3], [1, 2])
