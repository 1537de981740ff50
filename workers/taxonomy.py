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
saved in the bundle (see ``export.thresholds``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

PATH_SEPARATOR = " > "

FloatArray = npt.NDArray[np.float32]


def category_id(path: Sequence[str]) -> str:
    """A short, stable id for a category path (same path, same id, in every model)."""
    digest = hashlib.blake2b("\x1f".join(path).encode("utf-8"), digest_size=8)
    return digest.hexdigest()


def format_path(path: Sequence[str]) -> str:
    return PATH_SEPARATOR.join(path)


def parse_path(text: str) -> tuple[str, ...]:
    """``"A > B > C"`` to ``("A", "B", "C")``; blank parts are dropped."""
    return tuple(part.strip() for part in text.split(">") if part.strip())


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
        """Decode a batch of leaf scores [B, leaves] into decisions."""
        batch, n = scores.shape
        k = min(top_k, n)
        top = (
            np.argpartition(-scores, k - 1, axis=1)[:, :k]
            if k < n
            else np.tile(np.arange(n), (batch, 1))
        )
        top_scores = np.take_along_axis(scores, top, axis=1)
        order = np.argsort(-top_scores, axis=1, kind="stable")
        top = np.take_along_axis(top, order, axis=1)
        top_scores = np.take_along_axis(top_scores, order, axis=1)
        best = top[:, 0]
        best_score = top_scores[:, 0]

        chosen_path: list[tuple[str, ...] | None] = [None] * batch
        chosen_score = best_score.astype(np.float64).copy()
        abstained = np.zeros(batch, dtype=bool)
        low = np.flatnonzero(best_score < thresholds.leaf)
        if low.size:
            pending = low
            sub = scores[low]
            pos = np.arange(low.size)
            for d in range(self.depth - 1, 0, -1):
                if pending.size == 0:
                    break
                level = self.level_scores(sub[pos], d)
                arg = np.argmax(level, axis=1)
                val = level[np.arange(level.shape[0]), arg]
                ok = val >= thresholds.by_depth.get(d, 1.1)
                nodes = self._levels[d][1]
                for j in np.flatnonzero(ok):
                    item = int(pending[j])
                    chosen_path[item] = nodes[int(arg[j])]
                    chosen_score[item] = float(val[j])
                pending, pos = pending[~ok], pos[~ok]
            if pending.size:
                # Abstain: best top-level guess, flagged for review.
                if self.depth > 1:
                    level = self.level_scores(scores[pending], 1)
                    arg = np.argmax(level, axis=1)
                    nodes = self._levels[1][1]
                    for k, row in enumerate(pending.tolist()):
                        chosen_path[row] = nodes[int(arg[k])]
                        chosen_score[row] = float(level[k, arg[k]])
                abstained[pending] = True

        leaves, ids = self.leaves, self.leaf_ids
        top_l, top_s = top.tolist(), top_scores.tolist()
        best_l = best.tolist()
        scores_out = chosen_score.tolist()
        abst = abstained.tolist()
        out: list[Decision] = []
        append = out.append
        for i in range(batch):
            leaf = best_l[i]
            alts = tuple(
                [Alternative(ids[j], leaves[j], s) for j, s in zip(top_l[i], top_s[i], strict=True)]
            )
            path = chosen_path[i]
            if path is None or path == leaves[leaf]:
                append(
                    Decision(ids[leaf], leaves[leaf], scores_out[i], alts, abst[i], abst[i], leaf)
                )
            else:
                backed_off = len(path) < len(leaves[leaf])
                append(
                    Decision(
                        category_id(path),
                        path,
                        scores_out[i],
                        alts,
                        abst[i],
                        abst[i] or backed_off,
                        leaf,
                    )
                )
        return out
