"""The vectorized ``Taxonomy.decode`` gives exactly the answers of the straightforward
per-item algorithm (kept here as the reference), on the real bigbasket taxonomy and on a
ragged one (leaves of several depths, a leaf that is also an ancestor of other leaves)."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from export.data.datasets import load_dataset
from tests.unit.payloads import mapping_for
from workers.classify.categorized import DecisionEncoder
from workers.core.categories import category_id
from workers.inference.standard import StandardTable
from workers.inference.taxonomy import Alternative, Decision, Taxonomy, Thresholds

FloatArray = npt.NDArray[np.float32]


def reference_decode(
    tax: Taxonomy, scores: FloatArray, thresholds: Thresholds, top_k: int
) -> list[Decision]:
    """The decoding rules one item at a time, as written before the vectorized version."""
    out: list[Decision] = []
    k = min(top_k, scores.shape[1])
    for row in scores:
        order = sorted(range(len(row)), key=lambda j: (-row[j], j))[:k]
        alts = tuple(Alternative(tax.leaf_ids[j], tax.leaves[j], float(row[j])) for j in order)
        leaf = order[0]
        best = row[leaf]
        path: tuple[str, ...] | None = None
        score = float(best)
        abstained = False
        if best < thresholds.leaf:
            for d in range(tax.depth - 1, 0, -1):
                level = tax.level_scores(row[None, :], d)[0]
                arg = int(np.argmax(level))
                if level[arg] >= thresholds.by_depth.get(d, 1.1):
                    path, score = tax.nodes_at(d)[arg], float(level[arg])
                    break
            else:
                abstained = True
                if tax.depth > 1:
                    level = tax.level_scores(row[None, :], 1)[0]
                    arg = int(np.argmax(level))
                    path, score = tax.nodes_at(1)[arg], float(level[arg])
        if path is None or path == tax.leaves[leaf]:
            out.append(
                Decision(
                    tax.leaf_ids[leaf], tax.leaves[leaf], score, alts, abstained, abstained, leaf
                )
            )
        else:
            review = abstained or len(path) < len(tax.leaves[leaf])
            out.append(Decision(category_id(path), path, score, alts, abstained, review, leaf))
    return out


@functools.cache
def _bigbasket_paths(data_dir: Path) -> tuple[tuple[str, ...], ...]:
    examples, _ = load_dataset("bigbasket", data_dir)
    return tuple(sorted({e.path for e in examples}))


@pytest.fixture
def bigbasket(data_dir: Path) -> Taxonomy:
    return Taxonomy(_bigbasket_paths(data_dir))


@pytest.fixture
def ragged(data_dir: Path) -> Taxonomy:
    """Real paths cut to depths 1..3: some leaves are ancestors of others."""
    paths = _bigbasket_paths(data_dir)
    cut = {p[: 1 + i % 3] for i, p in enumerate(paths[::3])}
    return Taxonomy.from_unsorted(sorted(cut))


def model_like_scores(n_items: int, n_leaves: int, seed: int) -> FloatArray:
    """Softmax outputs from confident to flat (random logits at several temperatures)."""
    rng = np.random.default_rng(seed)
    scale = rng.choice([0.3, 1.0, 2.5, 5.0, 9.0], size=(n_items, 1))
    logits = rng.normal(size=(n_items, n_leaves)) * scale
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs: FloatArray = (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
    return probs


THRESHOLDS = [
    # as fitted on bigbasket at target precision 0.9
    Thresholds(leaf=0.6929, by_depth={1: 0.1759, 2: 0.4894}),
    Thresholds(leaf=0.5, by_depth={1: 0.9, 2: 1.01}),  # depth 2 never answers
    Thresholds(leaf=0.0),  # the leaf always answers
    Thresholds(leaf=1.01, by_depth={}),  # nothing answers: every item abstains
]


@pytest.mark.parametrize("thresholds", THRESHOLDS)
@pytest.mark.parametrize("top_k", [1, 3, 5])
def test_decode_matches_reference_on_bigbasket(
    bigbasket: Taxonomy, thresholds: Thresholds, top_k: int
) -> None:
    scores = model_like_scores(400, len(bigbasket), seed=top_k)
    got = bigbasket.decode(scores, thresholds, top_k)
    assert got == reference_decode(bigbasket, scores, thresholds, top_k)
    kinds = {(d.abstained, d.needs_review, len(d.path)) for d in got}
    if thresholds is THRESHOLDS[0]:
        assert len(kinds) >= 3  # confident leaves, back-offs and abstentions all occur
    assert all(type(d) is Decision and type(d.alternatives[0]) is Alternative for d in got)


@pytest.mark.parametrize("thresholds", THRESHOLDS[:2])
def test_decode_matches_reference_on_a_ragged_taxonomy(
    ragged: Taxonomy, thresholds: Thresholds
) -> None:
    assert {len(p) for p in ragged.leaves} == {1, 2, 3}
    assert any(ragged.leaves[i + 1][: len(p)] == p for i, p in enumerate(ragged.leaves[:-1]))
    scores = model_like_scores(600, len(ragged), seed=7)
    for top_k in (1, 3, len(ragged) + 2):
        assert ragged.decode(scores, thresholds, top_k) == reference_decode(
            ragged, scores, thresholds, top_k
        )


def test_decode_is_independent_of_the_batch(bigbasket: Taxonomy) -> None:
    scores = model_like_scores(50, len(bigbasket), seed=3)
    th = THRESHOLDS[0]
    whole = bigbasket.decode(scores, th, 3)
    assert whole == [bigbasket.decode(scores[i : i + 1], th, 3)[0] for i in range(50)]
    assert bigbasket.decode(scores[:0], th, 3) == []


def test_top_k_ties_go_to_the_lower_leaf_index() -> None:
    tax = Taxonomy.from_unsorted([("a", "x"), ("a", "y"), ("b", "z")])
    scores = np.array([[0.25, 0.375, 0.375]], dtype=np.float32)
    (d,) = tax.decode(scores, Thresholds(leaf=0.3), top_k=3)
    assert [a.path for a in d.alternatives] == [("a", "y"), ("b", "z"), ("a", "x")]
    assert d.path == ("a", "y") and d.leaf_index == 1


@pytest.mark.parametrize("thresholds", THRESHOLDS)
@pytest.mark.parametrize("top_k", [1, 3])
def test_encoding_from_the_arrays_is_byte_identical_to_encoding_each_decision(
    bigbasket: Taxonomy, ragged: Taxonomy, thresholds: Thresholds, top_k: int
) -> None:
    """The worker encodes its events straight from :meth:`Taxonomy.decide`'s arrays; that
    must give exactly what encoding each :class:`Decision` gives (ids, paths, every float's
    text, flags), for leaf answers, back-offs and abstentions alike."""
    for tax, seed in ((bigbasket, 11), (ragged, 12)):
        scores = model_like_scores(400, len(tax), seed)
        scores[:5] = 0.0  # no probability mass at all: everything abstains
        scores[5, 0] = 1.0  # clamped at exactly 1.0
        decided = tax.decide(scores, thresholds, top_k)
        encoder, reference = DecisionEncoder(), DecisionEncoder()
        assert encoder.encode_decided(decided) == [reference.encode(d) for d in decided.decisions()]
        assert encoder.encode_decided(tax.decide(scores[:0], thresholds, top_k)) == []
        # with a standard mapping: each answer's fields come from the per-leaf and per-node
        # arrays, and must be those of its own path (leaf answers, back-offs, abstentions)
        table = StandardTable(tax, mapping_for(tax))
        assert encoder.encode_decided(decided, table) == [
            reference.encode(d, table) for d in decided.decisions()
        ]
        backed = decided.node >= 0
        assert backed.any() or thresholds.leaf == 0.0
