"""Exact, depth and hierarchical scores of an alignment against gold answers."""

from __future__ import annotations

import pytest

from export.standard.metrics import Tally, f1, shared

A = ("Food", "Beverages", "Tea")
B = ("Food", "Beverages", "Coffee")
C = ("Food", "Snacks")


def test_f1_and_shared() -> None:
    assert shared(A, B) == 2 and f1(A, B) == pytest.approx(2 * 2 / 6)
    assert f1(A, A) == 1.0 and f1((), A) == 0.0 and f1(("Home",), A) == 0.0


def test_tally_counts_exact_accepted_depth_and_micro_hf1() -> None:
    t = Tally()
    assert t.add(A, [A]) is True
    assert t.add(B, [A, B]) is True  # an accepted alternative
    assert t.add(C, [A], flagged=True, label="snacks") is False
    assert t.add(None, [A]) is False  # unmatched: nothing predicted, recall drops
    r = t.rates()
    assert (t.n, t.exact, t.depth1, t.depth2, t.flagged, t.unmatched) == (4, 2, 3, 2, 1, 1)
    assert r["exact"] == 0.5
    # shared 3 + 3 + 1 + 0; predicted 3 + 3 + 2 + 0; gold 3 + 3 + 3 + 3
    assert r["hp"] == pytest.approx(7 / 8) and r["hr"] == pytest.approx(7 / 12)
    assert t.misses[0] == ("snacks", "Food > Snacks", "Food > Beverages > Tea")


def test_depth_accuracy_of_a_shallow_gold_needs_its_own_levels_only() -> None:
    t = Tally()
    t.add(("Food", "Beverages"), [("Food",)])
    assert (t.depth1, t.depth2, t.exact) == (1, 1, 0)


def test_merge() -> None:
    a, b = Tally(), Tally()
    a.add(A, [A])
    b.add(C, [A])
    a.merge(b)
    assert (a.n, a.exact, len(a.misses)) == (2, 1, 1)
