"""workers.inference.scores on category paths, against scikit-learn."""

from __future__ import annotations

import pytest

from workers.inference.scores import weighted_f1


def test_weighted_f1_matches_scikit_learn() -> None:
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    truth = [("a",), ("a",), ("b",), ("b",), ("b",), ("c",), ("a", "x")]
    pred = [("a",), ("b",), ("b",), ("b",), ("c",), ("c",), ("d",)]
    labels = sorted(set(truth) | set(pred))
    index = {label: i for i, label in enumerate(labels)}
    expected = sklearn_metrics.f1_score(
        [index[t] for t in truth], [index[p] for p in pred], average="weighted"
    )
    assert weighted_f1(truth, pred) == pytest.approx(expected)
    assert weighted_f1(truth, truth) == 1.0
