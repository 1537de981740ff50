"""Evaluation metrics against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from export.evaluation import metrics


def test_hierarchical_prf_hand_computed() -> None:
    truth = [("a", "b", "c"), ("a", "b", "d"), ("x", "y", "z")]
    pred = [("a", "b", "c"), ("a", "e", "f"), ("a", "b")]
    hp, hr, hf = metrics.hierarchical_prf(truth, pred)
    # common prefixes: 3, 1, 0 ; predicted lengths 3+3+2 ; true lengths 9
    assert hp == pytest.approx(4 / 8)
    assert hr == pytest.approx(4 / 9)
    assert hf == pytest.approx(2 * (4 / 8) * (4 / 9) / (4 / 8 + 4 / 9))


def test_coverage_at_precision() -> None:
    conf = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    correct = np.array([True, True, True, False, False])
    assert metrics.coverage_at_precision(conf, correct, 0.95) == pytest.approx(0.6)
    assert metrics.coverage_at_precision(conf, correct, 0.7) == pytest.approx(0.8)
    assert metrics.coverage_at_precision(conf, ~correct, 0.95) == 0.0


def test_score_headline() -> None:
    truth = [("a", "x"), ("a", "y"), ("b", "z"), ("b", "z")]
    pred = [("a", "x"), ("a", "x"), ("b", "z"), ("a", "y")]
    s = metrics.score(truth, pred, top3_hit=np.array([True, True, True, False]))
    assert s.accuracy == pytest.approx(0.5)
    assert s.top3_accuracy == pytest.approx(0.75)
    assert s.top_level_accuracy == pytest.approx(0.75)
    # per class F1: a>x: p=1/2 r=1 -> 2/3 ; a>y: 0 ; b>z: p=1 r=1/2 -> 2/3
    assert s.macro_f1 == pytest.approx((2 / 3 + 0 + 2 / 3) / 3)
    assert s.weighted_f1 == pytest.approx((2 / 3 * 1 + 0 * 1 + 2 / 3 * 2) / 4)


def test_confused_pairs_and_matrix() -> None:
    truth = [("a",), ("a",), ("b",), ("b",), ("c",)]
    pred = [("b",), ("b",), ("b",), ("a",), ("c",)]
    assert metrics.confused_pairs(truth, pred)[0] == ("a", "b", 2)
    classes, m = metrics.confusion_matrix(truth, pred)
    assert classes[:2] == ["a", "b"]
    assert m[0, 1] == 2 and m[1, 1] == 1
