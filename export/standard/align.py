"""Align a catalog's own category tree to a standard tree (Shopify's, by default).

Every source category, inner ones included, gets one standard node, a score, a
status and runner-up nodes. Categories are decided parents first:

1. **Votes** (:mod:`export.standard.evidence`): the category's name and path vote
   for nodes named like it (weight ``name_weight``); its product titles, sampled
   from it and every category under it (each leaf weighted by its product count),
   vote for the nodes they match (weight ``1 - name_weight``). A category without
   products has name votes only. All votes are scaled by the catalog's domain
   prior. Chinese catalogs (names mostly Han characters) are matched against the
   tree's Chinese names, others against the English ones.
2. **The tree**: votes far from the parent's answer count less, by
   ``((1 + shared levels) / (1 + parent answer depth)) ** affinity`` (an unmatched
   parent constrains nothing: the nearest ancestor with an answer does).
3. **Decision**: a category with products that is named exactly like a standard
   node (the same words in any order, or the same Chinese name) and has at least
   ``majority`` of its votes at or under that node takes it: its name and its
   products agree. Otherwise a category with categories under it takes the deepest
   node that holds at least ``majority`` of its votes (walking down from the best
   root): the node that covers most of its products. A leaf takes the node with the
   highest expected hierarchical F1 against its votes, plus ``consistency`` times
   the share of the parent answer's path it contains: specific when the votes agree,
   the shared ancestor when they split, inside the parent's answer when in doubt.

``score`` = coverage (share of the votes at or under the answer) x evidence strength
(the best name similarity and the mean best title match, weighted like the votes).
At or above ``ok_score`` the status is ``ok``; below it ``low`` (a reviewer should
look). Below ``min_score`` the category's own evidence is too weak to name a node:

4. **Back-off** (``backoff``): it takes the answer of its nearest ancestor that has
   one, flagged ``low``, with its own best node first among the runner-ups. The
   ancestor's node is a coarser answer but, since the tree is consistent, a right
   one far more often than a guess from weak evidence, and it scores better
   hierarchically than no answer (which adds nothing) or a wrong leaf (which costs
   precision). A category with no answered ancestor gets ``none``: no answer is
   published, the runner-ups are kept for the reviewer.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt

from export.standard.evidence import (
    EvidenceConfig,
    TreeIndex,
    Votes,
    domain_prior,
    name_votes,
    specificity,
    title_votes,
)
from export.standard.textmatch import Features, features, has_han
from export.standard.trees import StandardTree

Path = tuple[str, ...]
IntArray = npt.NDArray[np.int32]

STATUS_OK = "ok"
STATUS_LOW = "low"
STATUS_NONE = "none"


@dataclass(frozen=True, slots=True)
class AlignConfig:
    """How evidence is weighed and when answers are flagged. The defaults were chosen
    on the tuning rows of the hand-checked sample (see ``bench/taxonomy_alignment.py``)."""

    max_titles: int = 60
    name_weight: float = 0.4
    affinity: float = 3.0
    consistency: float = 0.3
    majority: float = 0.4
    ok_score: float = 0.25
    min_score: float = 0.04
    backoff: bool = True
    named: bool = True
    lang: str | None = None  # None: "zh" when the category names are mostly Han
    evidence: EvidenceConfig = field(default_factory=EvidenceConfig)


@dataclass(frozen=True, slots=True)
class Candidate:
    node: int
    score: float


@dataclass(frozen=True, slots=True)
class Alignment:
    """One source category's answer. ``node`` is the best node even when ``status`` is
    ``none``; it is then a suggestion for a reviewer, not an answer."""

    path: Path
    node: int
    score: float
    status: str
    alternatives: tuple[Candidate, ...]
    name_score: float
    title_score: float
    products: int
    coverage: float

    @property
    def matched(self) -> bool:
        return self.status != STATUS_NONE


@dataclass(slots=True)
class _Source:
    count: int = 0
    titles: list[Features] = field(default_factory=list)
    children: list[Path] = field(default_factory=list)


def sample_titles(titles: Iterable[str], limit: int) -> list[str]:
    """Up to ``limit`` distinct titles spread evenly over the sorted distinct titles
    (deterministic)."""
    unique = sorted({t.strip() for t in titles if t.strip()})
    if len(unique) <= limit:
        return unique
    step = len(unique) / limit
    return [unique[int(i * step)] for i in range(limit)]


def leaf_titles(rows: Iterable[tuple[Sequence[str], str]]) -> dict[Path, list[str]]:
    """Group (category path, title) rows by path."""
    out: dict[Path, list[str]] = defaultdict(list)
    for path, title in rows:
        out[tuple(path)].append(title)
    return dict(out)


class Aligner:
    """Aligns category trees to one :class:`StandardTree` (its text indices are built
    once per language and reused)."""

    def __init__(self, tree: StandardTree, config: AlignConfig | None = None) -> None:
        self.tree = tree
        self.config = config or AlignConfig()
        self._indices: dict[str, TreeIndex] = {}

    def language(self, paths: Iterable[Sequence[str]]) -> str:
        """``zh`` when the category names are mostly Han and the tree has Chinese names."""
        if self.config.lang:
            return self.config.lang
        names = " ".join(level for path in paths for level in path)
        return "zh" if has_han(names) and "zh" in self.tree.paths else "en"

    def index(self, lang: str) -> TreeIndex:
        if lang not in self._indices:
            self._indices[lang] = TreeIndex(self.tree, lang, self.config.evidence)
        return self._indices[lang]

    def align(self, products: Mapping[Path, Sequence[str]]) -> list[Alignment]:
        """Align every category of ``products`` (leaf path -> the titles filed under it,
        possibly none) and all their ancestors; parents come before children."""
        lang = self.language(products)
        index = self.index(lang)
        sources = self._sources(products, lang)
        specific = specificity([s.titles for s in sources.values()])
        leaf_votes = {
            path: (*title_votes(index, s.titles, specific), len(s.titles))
            for path, s in sources.items()
            if s.titles
        }
        prior = domain_prior(
            self.tree,
            [(max(sources[p].count, 1) / n, votes) for p, (votes, _, n) in leaf_votes.items()],
            self.config.evidence,
        )
        answers: dict[Path, int] = {}
        out: list[Alignment] = []
        for path in sorted(sources, key=lambda p: (len(p), p)):
            titles, title_score, n_titles = _subtree_votes(path, sources, leaf_votes)
            names, name_score = name_votes(index, path)
            parent = _context(path, answers)
            alignment = self._decide(
                path,
                self._combine(titles, names, prior),
                parent,
                inner=bool(sources[path].children),
                name_score=name_score,
                title_score=title_score,
                n_titles=n_titles,
                named=index.named(path[-1]) if self.config.named and titles else [],
            )
            if not alignment.matched and parent is not None and self.config.backoff:
                alignment = _backoff(alignment, parent)
            if alignment.matched:
                answers[path] = alignment.node
            out.append(alignment)
        return out

    def _sources(self, products: Mapping[Path, Sequence[str]], lang: str) -> dict[Path, _Source]:
        sources: dict[Path, _Source] = {}
        for raw, titles in products.items():
            leaf = tuple(raw)
            for d in range(1, len(leaf) + 1):
                sources.setdefault(leaf[:d], _Source())
                if d > 1 and leaf[:d] not in sources[leaf[: d - 1]].children:
                    sources[leaf[: d - 1]].children.append(leaf[:d])
            sampled = sample_titles(titles, self.config.max_titles)
            sources[leaf].count = len(titles)
            sources[leaf].titles = [f for f in (features(t, lang) for t in sampled) if f]
        return sources

    def _combine(self, titles: Votes, names: Votes, prior: npt.NDArray[np.float64]) -> Votes:
        weight = self.config.name_weight if titles else 1.0
        out: Votes = defaultdict(float)
        for node, value in names.items():
            out[node] += weight * value * prior[node]
        for node, value in titles.items():
            out[node] += (1.0 - weight) * value * prior[node]
        return dict(out)

    # -- decision ---------------------------------------------------------------------

    def _shared(self, a: IntArray, b: IntArray) -> IntArray:
        """Shared path length (levels in common) of every node in ``a`` with every node
        in ``b``."""
        ca, cb = self.tree.chain[a], self.tree.chain[b]
        equal = (ca[:, None, :] == cb[None, :, :]) & (ca[:, None, :] >= 0)
        out: IntArray = np.cumprod(equal, axis=2).sum(axis=2).astype(np.int32)
        return out

    def _decide(
        self,
        path: Path,
        votes: Votes,
        parent: int | None,
        *,
        inner: bool,
        name_score: float,
        title_score: float,
        n_titles: int,
        named: Sequence[int] = (),
    ) -> Alignment:
        tree, config = self.tree, self.config
        if not votes:
            node = parent if parent is not None else 0
            return Alignment(path, node, 0.0, STATUS_NONE, (), 0.0, 0.0, n_titles, 0.0)
        voted = np.asarray(list(votes), dtype=np.int32)
        weights = np.asarray([votes[int(n)] for n in voted], dtype=np.float64)
        if parent is not None:
            near = self._shared(voted, np.asarray([parent], dtype=np.int32))[:, 0]
            weights *= ((1.0 + near) / (1.0 + tree.depth[parent])) ** config.affinity
        coverage = np.zeros(len(tree), dtype=np.float64)
        rows, cols = np.nonzero(tree.chain[voted] >= 0)
        np.add.at(coverage, tree.chain[voted][rows, cols], weights[rows])
        coverage /= weights.sum()
        if inner:
            best, ranking = self._majority(coverage)
        else:
            best, ranking = self._best_f1(voted, weights, parent)
        if named:
            held = [n for n in named if coverage[n] >= config.majority]
            if held:
                # The one with the most votes, or the deepest named node under it that
                # also holds most of them ("Basketballs" under the sport "Basketball").
                top = max(held, key=lambda n: float(coverage[n]))
                best = max(
                    (n for n in held if top in tree.ancestors(n)),
                    key=lambda n: int(tree.depth[n]),
                )
        strength = (
            config.name_weight * name_score + (1.0 - config.name_weight) * title_score
            if n_titles
            else name_score
        )
        score = float(coverage[best] * strength)
        above = set(tree.ancestors(best))
        alternatives = tuple(
            Candidate(int(n), float(coverage[n] * strength)) for n in ranking if int(n) not in above
        )[:3]
        status = (
            STATUS_OK
            if score >= config.ok_score
            else STATUS_LOW
            if score >= config.min_score
            else STATUS_NONE
        )
        return Alignment(
            path,
            best,
            score,
            status,
            alternatives,
            name_score,
            title_score,
            n_titles,
            float(coverage[best]),
        )

    def _majority(self, coverage: npt.NDArray[np.float64]) -> tuple[int, list[int]]:
        """From the root with the most votes, walk down while a child holds at least
        ``majority`` of them. Runner-ups: other nodes by coverage, deepest first."""
        tree = self.tree
        roots = np.flatnonzero((tree.parent == -1) & (coverage > 0))
        node = int(roots[np.argmax(coverage[roots])])
        while True:
            children = np.flatnonzero((tree.parent == node) & (coverage >= self.config.majority))
            if children.size == 0:
                break
            node = int(children[np.argmax(coverage[children])])
        live = np.flatnonzero(coverage > 0)
        order = live[np.lexsort((-tree.depth[live], -coverage[live]))]
        return node, [int(n) for n in order[:8]]

    def _best_f1(
        self, voted: IntArray, weights: npt.NDArray[np.float64], parent: int | None
    ) -> tuple[int, list[int]]:
        """The node with the highest expected hierarchical F1 against the votes, plus the
        bonus for lying inside the parent's answer. Runner-ups by the same objective."""
        tree, config = self.tree, self.config
        pool = {a for n in voted.tolist() for a in tree.ancestors(n)}
        if parent is not None:
            pool.update(tree.ancestors(parent))
        candidates = np.asarray(sorted(pool), dtype=np.int32)
        depths = tree.depth[candidates][:, None] + tree.depth[voted][None, :]
        objective = (2.0 * self._shared(candidates, voted) / depths) @ weights / weights.sum()
        if parent is not None:
            inside = self._shared(candidates, np.asarray([parent], dtype=np.int32))[:, 0]
            objective = objective + config.consistency * inside / tree.depth[parent]
        order = np.argsort(-objective, kind="stable")
        return int(candidates[order[0]]), [int(candidates[i]) for i in order[1:9]]


def _backoff(alignment: Alignment, answer: int) -> Alignment:
    """``alignment`` (too weak to publish) answered by an ancestor's ``answer``, flagged
    ``low``; its own best node leads the runner-ups (once, and not if it is ``answer``)."""
    own = (Candidate(alignment.node, alignment.score),) if alignment.node != answer else ()
    rest = tuple(c for c in alignment.alternatives if c.node not in (answer, alignment.node))
    return replace(alignment, node=answer, status=STATUS_LOW, alternatives=(*own, *rest)[:3])


def _context(path: Path, answers: Mapping[Path, int]) -> int | None:
    """The answer of the nearest ancestor that has one (an unmatched parent constrains
    nothing)."""
    for depth in range(len(path) - 1, 0, -1):
        answer = answers.get(path[:depth])
        if answer is not None:
            return answer
    return None


def _subtree_votes(
    path: Path,
    sources: Mapping[Path, _Source],
    leaf_votes: Mapping[Path, tuple[Votes, float, int]],
) -> tuple[Votes, float, int]:
    """Title votes of ``path`` and every category under it: each category's votes per
    title, weighted by its share of the products. Returns the votes, the mean best
    title match and the number of titles."""
    stack, parts = [path], []
    while stack:
        node = stack.pop()
        if node in leaf_votes:
            parts.append((max(sources[node].count, 1), leaf_votes[node]))
        stack.extend(sources[node].children)
    weight_sum = sum(w for w, _ in parts)
    votes: Votes = defaultdict(float)
    score, titles = 0.0, 0
    for weight, (votes_here, score_here, n) in parts:
        share = weight / weight_sum
        for standard_node, value in votes_here.items():
            votes[standard_node] += share * value / n
        score += share * score_here
        titles += n
    return dict(votes), score, titles
