"""Category paths, stable category ids, and hierarchical decoding of leaf scores.

The model scores leaves. An ancestor's score is the sum of its leaves' scores.
:class:`Taxonomy` keeps the leaves sorted by path so that, at every depth, each
node's leaves are contiguous; one ``np.add.reduceat`` per depth then gives all
ancestor scores of a batch without a matrix product.

Decoding (:meth:`Taxonomy.decode`):

1. the best leaf and the top-k alternatives come straight from the scores;
2. if the best leaf's score clears the leaf threshold, it is the answer;
3. otherwise, from the deepest level up, the best node of that level is taken
   if its summed score clears that level's threshold ("backed off");
4. if nothing clears, the item is *abstained*: the answer is the best
   top-level node, flagged for review.

Thresholds are chosen offline on validation data for a target precision and
saved in the bundle (see ``export.training.thresholds``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from workers.core.categories import category_id

FloatArray = npt.NDArray[np.float32]


class Alternative(NamedTuple):
    """One of the top-k leaves with its score. (A NamedTuple: decoding builds k of these
    per item on the hot path, and tuples are several times cheaper than dataclasses.)"""

    category_id: str
    path: tuple[str, ...]
    score: float


class Decision(NamedTuple):
    """The decoded answer for one item."""

    category_id: str
    path: tuple[str, ...]
    confidence: float
    alternatives: tuple[Alternative, ...]
    abstained: bool
    needs_review: bool
    leaf_index: int


@dataclass(frozen=True)
class Thresholds:
    """Per-depth confidence thresholds. ``leaf`` applies to leaf scores; ``by_depth``
    (1 = top level) to summed ancestor scores during back-off."""

    leaf: float = 0.0
    by_depth: Mapping[int, float] = field(default_factory=dict)
    target_precision: float | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "leaf": self.leaf,
            "by_depth": {str(k): v for k, v in sorted(self.by_depth.items())},
            "target_precision": self.target_precision,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Thresholds:
        raw = data.get("by_depth", {})
        by_depth = {int(k): float(v) for k, v in raw.items()} if isinstance(raw, Mapping) else {}
        target = data.get("target_precision")
        leaf = data.get("leaf", 0.0)
        return cls(
            leaf=float(leaf) if isinstance(leaf, int | float) else 0.0,
            by_depth=by_depth,
            target_precision=float(target) if isinstance(target, int | float) else None,
        )


def _objects(values: Sequence[object]) -> npt.NDArray[np.object_]:
    """A 1-d object array holding ``values`` as they are (tuples stay elements)."""
    out = np.empty(len(values), dtype=object)
    for i, value in enumerate(values):
        out[i] = value
    return out


class Taxonomy:
    """The leaf paths a model scores, with their ancestors."""

    def __init__(self, leaves: Sequence[Sequence[str]]) -> None:
        paths = [tuple(p) for p in leaves]
        if not paths:
            raise ValueError("a taxonomy needs at least one leaf path")
        if any(not p for p in paths):
            raise ValueError("category paths must not be empty")
        if len(set(paths)) != len(paths):
            raise ValueError("leaf paths must be unique")
        if paths != sorted(paths):
            raise ValueError("leaf paths must be sorted (use Taxonomy.from_unsorted)")
        self.leaves: tuple[tuple[str, ...], ...] = tuple(paths)
        self.leaf_ids: tuple[str, ...] = tuple(category_id(p) for p in paths)
        self.depth = max(len(p) for p in paths)
        # Per depth: contiguous runs of leaves sharing the same depth-d prefix.
        self._levels: dict[int, tuple[npt.NDArray[np.intp], list[tuple[str, ...]]]] = {}
        for d in range(1, self.depth):
            starts: list[int] = []
            nodes: list[tuple[str, ...]] = []
            for i, p in enumerate(paths):
                prefix = p[:d]
                if not nodes or nodes[-1] != prefix:
                    starts.append(i)
                    nodes.append(prefix)
            self._levels[d] = (np.asarray(starts, dtype=np.intp), nodes)
        # Every ancestor node of every level, end to end, for decode: ids and paths are
        # looked up (object arrays, indexed by the batch at once), never hashed per item.
        leaf_of = self.index()
        self._node_offset: dict[int, int] = {}
        node_paths: list[tuple[str, ...]] = []
        for d in range(1, self.depth):
            self._node_offset[d] = len(node_paths)
            node_paths += self._levels[d][1]
        self._leaf_id_arr = _objects(self.leaf_ids)
        self._leaf_path_arr = _objects(self.leaves)
        self._leaf_len_arr = np.array([len(p) for p in paths], dtype=np.intp)
        self.node_paths: tuple[tuple[str, ...], ...] = tuple(node_paths)
        """Every inner node (each level's prefixes of the leaves, shallowest level first): the
        order of :attr:`Decided.node`."""
        self._node_id_arr = _objects([category_id(p) for p in node_paths])
        self._node_path_arr = _objects(node_paths)
        self._node_len_arr = np.array([len(p) for p in node_paths], dtype=np.intp)
        self._node_leaf_arr = np.array([leaf_of.get(p, -1) for p in node_paths], dtype=np.intp)

    @classmethod
    def from_unsorted(cls, leaves: Sequence[Sequence[str]]) -> Taxonomy:
        return cls(sorted({tuple(p) for p in leaves}))

    def __len__(self) -> int:
        return len(self.leaves)

    def index(self) -> dict[tuple[str, ...], int]:
        return {p: i for i, p in enumerate(self.leaves)}

    def nodes_at(self, depth: int) -> list[tuple[str, ...]]:
        if depth >= self.depth:
            return sorted({p[:depth] for p in self.leaves})
        return list(self._levels[depth][1])

    def level_scores(self, scores: FloatArray, depth: int) -> FloatArray:
        """Summed scores of the depth-``depth`` nodes, shape [B, nodes_at(depth)]."""
        starts, _ = self._levels[depth]
        return np.add.reduceat(scores, starts, axis=1)

    def decode(self, scores: FloatArray, thresholds: Thresholds, top_k: int) -> list[Decision]:
        """Decode a batch of leaf scores [B, leaves] (probabilities) into decisions: the
        arrays of :meth:`decide`, as :class:`Decision` tuples."""
        return self.decide(scores, thresholds, top_k).decisions()

    def decide(self, scores: FloatArray, thresholds: Thresholds, top_k: int) -> Decided:
        """The decisions of a batch of leaf scores [B, leaves], as arrays.

        Vectorized over the batch: the top-k come from ``k`` arg-max passes (ties go to
        the lower leaf index), every ancestor level is summed once with ``reduceat`` for
        the items below the leaf threshold, and answers are picked from precomputed ids
        and paths by array indexing.
        """
        batch, n = scores.shape
        k = min(top_k, n)
        rows = np.arange(batch)
        top = np.empty((batch, k), dtype=np.intp)
        top_scores = np.empty((batch, k), dtype=scores.dtype)
        work = scores.copy() if k > 1 else scores
        for j in range(k):
            arg = work.argmax(axis=1)
            top[:, j] = arg
            top_scores[:, j] = scores[rows, arg]
            if j + 1 < k:
                work[rows, arg] = -np.inf
        best = top[:, 0]
        best_score = top_scores[:, 0]

        # node[i]: index into self._node_* of a backed-off answer, or -1 (the best leaf)
        node = np.full(batch, -1, dtype=np.intp)
        chosen_score = best_score.astype(np.float64)
        abstained = np.zeros(batch, dtype=bool)
        low = np.flatnonzero(best_score < thresholds.leaf)
        if low.size and self.depth > 1:
            sub = scores[low]
            pending = np.ones(low.size, dtype=bool)
            for d in range(self.depth - 1, 0, -1):
                level = self.level_scores(sub, d)
                arg = level.argmax(axis=1)
                val = level[np.arange(low.size), arg]
                if d == 1:
                    # what is still pending abstains on its best top-level guess
                    hit = pending
                    abstained[low[pending & ~(val >= thresholds.by_depth.get(d, 1.1))]] = True
                else:
                    hit = pending & (val >= thresholds.by_depth.get(d, 1.1))
                rows_hit = low[hit]
                node[rows_hit] = self._node_offset[d] + arg[hit]
                chosen_score[rows_hit] = val[hit]
                pending &= ~hit
        elif low.size:
            abstained[low] = True

        # Answer per item: the best leaf, or the backed-off node unless it is that leaf.
        backed = node >= 0
        backed[backed] = self._node_leaf_arr[node[backed]] != best[backed]
        answer_id = self._leaf_id_arr[best]
        answer_path = self._leaf_path_arr[best]
        depth = self._leaf_len_arr[best]
        review = abstained.copy()
        answer_node = np.where(backed, node, -1)
        if backed.any():
            nodes = node[backed]
            answer_id[backed] = self._node_id_arr[nodes]
            answer_path[backed] = self._node_path_arr[nodes]
            depth[backed] = self._node_len_arr[nodes]
            review[backed] |= self._node_len_arr[nodes] < self._leaf_len_arr[best[backed]]
        return Decided(
            self, answer_id, answer_path, depth, chosen_score, abstained, review, best, top,
            top_scores, answer_node,
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Decided:
    """A batch's decisions as arrays (:meth:`Taxonomy.decide`), item ``i`` at index ``i``:
    its answer's id, path and depth, confidence, flags, best leaf, the top-k leaves with
    their scores, and which inner node it backed off to (-1 when the answer is the leaf).
    :meth:`decisions` turns them into :class:`Decision` tuples; the classify worker encodes
    its events from the arrays directly
    (:meth:`workers.classify.categorized.DecisionEncoder.encode_decided`)."""

    taxonomy: Taxonomy
    answer_id: npt.NDArray[np.object_]  # str
    answer_path: npt.NDArray[np.object_]  # tuple[str, ...]
    depth: npt.NDArray[np.intp]
    confidence: npt.NDArray[np.float64]
    abstained: npt.NDArray[np.bool_]
    review: npt.NDArray[np.bool_]
    best: npt.NDArray[np.intp]  # leaf index
    top: npt.NDArray[np.intp]  # [B, k] leaf indexes, best first
    top_scores: FloatArray  # [B, k]
    node: npt.NDArray[np.intp]  # the backed-off answer's index in node_paths, -1: the leaf

    def __len__(self) -> int:
        return len(self.best)

    def decisions(self) -> list[Decision]:
        """One :class:`Decision` per item, built with C-level iteration only (map/zip over
        lists)."""
        if not len(self):
            return []
        tax = self.taxonomy
        k = self.top.shape[1]
        new = tuple.__new__
        flat = list(
            map(
                new,
                repeat(Alternative),
                zip(
                    tax._leaf_id_arr[self.top].ravel().tolist(),
                    tax._leaf_path_arr[self.top].ravel().tolist(),
                    self.top_scores.ravel().tolist(),
                    strict=True,
                ),
            )
        )
        alternatives = zip(*([iter(flat)] * k), strict=True)
        return list(
            map(
                new,
                repeat(Decision),
                zip(
                    self.answer_id.tolist(),
                    self.answer_path.tolist(),
                    self.confidence.tolist(),
                    alternatives,
                    self.abstained.tolist(),
                    self.review.tolist(),
                    self.best.tolist(),
                    strict=True,
                ),
            )
        )
