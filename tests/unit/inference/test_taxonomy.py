"""Hierarchical decoding: leaf answers, back-off to ancestors, abstention, top-k."""

from __future__ import annotations

import numpy as np
import pytest

from export.training.thresholds import NEVER, choose_thresholds
from workers.core.categories import category_id
from workers.inference.taxonomy import Taxonomy, Thresholds

LEAVES = [
    ("Beauty & Hygiene", "Hair Care", "Shampoo & Conditioner"),
    ("Beauty & Hygiene", "Hair Care", "Hair Oil & Serum"),
    ("Beauty & Hygiene", "Skin Care", "Face Care"),
    ("Beverages", "Tea", "Green Tea"),
    ("Beverages", "Tea", "Tea Bags"),
]


@pytest.fixture
def tax() -> Taxonomy:
    return Taxonomy.from_unsorted(LEAVES)


def test_category_id_is_stable_and_distinct() -> None:
    assert category_id(LEAVES[0]) == category_id(list(LEAVES[0]))
    assert len({category_id(p) for p in LEAVES}) == len(LEAVES)
    assert category_id(("a", "b")) != category_id(("a b",))


def test_level_scores_sum_leaves(tax: Taxonomy) -> None:
    scores = np.array([[0.1, 0.2, 0.3, 0.15, 0.25]], dtype=np.float32)
    top = tax.level_scores(scores, 1)
    assert tax.nodes_at(1) == [("Beauty & Hygiene",), ("Beverages",)]
    np.testing.assert_allclose(top, [[0.6, 0.4]], rtol=1e-6)
    mid = tax.level_scores(scores, 2)
    np.testing.assert_allclose(mid, [[0.3, 0.3, 0.4]], rtol=1e-6)


def test_confident_leaf_is_answered(tax: Taxonomy) -> None:
    scores = np.array([[0.9, 0.05, 0.05, 0.0, 0.0]], dtype=np.float32)
    (d,) = tax.decode(scores, Thresholds(leaf=0.5, by_depth={1: 0.5, 2: 0.5}), top_k=3)
    assert d.path == tax.leaves[0] and not d.abstained and not d.needs_review
    assert d.confidence == pytest.approx(0.9)
    assert d.alternatives[0].path == tax.leaves[0]
    assert len(d.alternatives) == 3
    assert d.alternatives[0].score >= d.alternatives[1].score >= d.alternatives[2].score


def test_backs_off_to_deepest_confident_ancestor(tax: Taxonomy) -> None:
    # No leaf above 0.5, but "Beauty & Hygiene > Hair Care" sums to 0.7.
    scores = np.array([[0.4, 0.3, 0.1, 0.1, 0.1]], dtype=np.float32)
    (d,) = tax.decode(scores, Thresholds(leaf=0.5, by_depth={1: 0.5, 2: 0.6}), top_k=2)
    assert d.path == ("Beauty & Hygiene", "Hair Care")
    assert d.confidence == pytest.approx(0.7)
    assert d.needs_review and not d.abstained
    assert d.category_id == category_id(("Beauty & Hygiene", "Hair Care"))
    assert d.alternatives[0].path == tax.leaves[0]


def test_abstains_when_nothing_clears(tax: Taxonomy) -> None:
    scores = np.array([[0.2, 0.2, 0.2, 0.2, 0.2]], dtype=np.float32)
    (d,) = tax.decode(scores, Thresholds(leaf=0.5, by_depth={1: 0.9, 2: 0.9}), top_k=3)
    assert d.abstained and d.needs_review
    assert d.path == ("Beauty & Hygiene",)


def test_batch_decode_matches_single(tax: Taxonomy) -> None:
    rng = np.random.default_rng(0)
    raw = rng.random((64, 5)).astype(np.float32) ** 4
    scores = raw / raw.sum(axis=1, keepdims=True)
    th = Thresholds(leaf=0.6, by_depth={1: 0.7, 2: 0.65})
    batch = tax.decode(scores, th, top_k=2)
    single = [tax.decode(scores[i : i + 1], th, top_k=2)[0] for i in range(64)]
    assert batch == single
    assert {d.needs_review for d in batch} == {True, False}


def test_flat_taxonomy_abstains_on_leaf() -> None:
    tax = Taxonomy.from_unsorted([("Shoes",), ("Dresses",), ("Shirts & Tops",)])
    scores = np.array([[0.4, 0.35, 0.25]], dtype=np.float32)
    (d,) = tax.decode(scores, Thresholds(leaf=0.5), top_k=5)
    assert d.abstained and d.path == ("Dresses",)
    assert len(d.alternatives) == 3


def test_thresholds_reach_target_precision(tax: Taxonomy) -> None:
    rng = np.random.default_rng(1)
    n = 2000
    truth_idx = rng.integers(0, 5, n)
    noise = rng.random((n, 5)).astype(np.float32)
    noise[np.arange(n), truth_idx] += rng.random(n).astype(np.float32) * 3
    probs = noise / noise.sum(axis=1, keepdims=True)
    truth = [tax.leaves[i] for i in truth_idx]
    th = choose_thresholds(tax, probs, truth, 0.9)
    answered = probs.max(axis=1) >= th.leaf
    assert answered.any()
    precision = np.mean(probs.argmax(axis=1)[answered] == truth_idx[answered])
    assert precision >= 0.9
    assert set(th.by_depth) == {1, 2}


def test_unreachable_target_never_answers(tax: Taxonomy) -> None:
    probs = np.full((10, 5), 0.2, dtype=np.float32)
    probs[:, 0] = 0.21
    truth = [tax.leaves[1]] * 10
    th = choose_thresholds(tax, probs, truth, 0.99)
    assert th.leaf == NEVER


def test_thresholds_round_trip() -> None:
    th = Thresholds(leaf=0.4, by_depth={1: 0.3, 2: 0.35}, target_precision=0.9)
    assert Thresholds.from_dict(th.to_dict()) == th


def test_taxonomy_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        Taxonomy([])
    with pytest.raises(ValueError):
        Taxonomy([("b",), ("a",)])
    with pytest.raises(ValueError):
        Taxonomy([("a",), ("a",)])


def test_backoff_thresholds_hold_precision_on_the_residual(tax: Taxonomy) -> None:
    """Decoding with the chosen thresholds keeps every group (leaf answers, backed-off
    answers) at the target precision on the data they were fitted on."""
    rng = np.random.default_rng(3)
    n = 4000
    truth_idx = rng.integers(0, 5, n)
    noise = rng.random((n, 5)).astype(np.float32)
    noise[np.arange(n), truth_idx] += rng.random(n).astype(np.float32) * 2
    # siblings share signal, so ancestors are easier than leaves
    noise[:, :2] += noise[:, :2].mean(axis=1, keepdims=True)
    probs = noise / noise.sum(axis=1, keepdims=True)
    truth = [tax.leaves[i] for i in truth_idx]
    th = choose_thresholds(tax, probs, truth, 0.85)
    decisions = tax.decode(probs, th, top_k=1)
    backed = [
        (d, t) for d, t in zip(decisions, truth, strict=True) if d.needs_review and not d.abstained
    ]
    leafs = [(d, t) for d, t in zip(decisions, truth, strict=True) if not d.needs_review]
    assert backed and leafs
    for group in (backed, leafs):
        hits = sum(1 for d, t in group if t[: len(d.path)] == d.path)
        assert hits / len(group) >= 0.85
