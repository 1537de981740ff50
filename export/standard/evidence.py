"""The evidence an alignment weighs: votes for standard nodes from category names and
from product titles, and the catalog's domain prior.

A *vote* is a (standard node index -> weight) map. Name votes of one category sum
to its best name similarity, title votes of one title to that title's best match,
so strong evidence outweighs weak evidence when they are added up.

* :class:`TreeIndex` holds the standard tree's nodes as text, once per language:
  their own names (words and, for English, character n-grams), their paths (own
  name first, ancestors at ``path_decay`` per level) and, for titles, the share of
  each node's own name that a title contains.
* :func:`name_votes` matches a category's own name and path against the nodes.
* :func:`title_votes` matches each product title against the nodes' paths. A
  title's words weigh by how specific they are to this category within the
  catalog (:func:`specificity`) and by how many of the category's titles share
  them, so a word one title uses by chance (a colour, a flavour, a brand of one
  product) does not steer it; words naming *who* a product is for (men, girls,
  儿童) only tilt a match. A node's match is scaled by the share of its own name
  the title contains, so "watch bands" loses to "watches" for a watch.
* :meth:`TreeIndex.named` finds the nodes named exactly like a category (the same
  words after normalization, or the same Chinese name).
* :func:`domain_prior` turns the whole catalog's title votes into a multiplier per
  branch (depth-2 ancestor) of the standard tree: a grocery catalog's "oil" is
  cooking oil before it is engine oil.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from export.standard.textmatch import (
    AUDIENCE,
    Features,
    SparseIndex,
    add_into,
    document_frequencies,
    features,
    name_key,
)
from export.standard.trees import StandardTree

Path = tuple[str, ...]
Votes = dict[int, float]
PRIOR_DEPTH = 2


@dataclass(frozen=True, slots=True)
class EvidenceConfig:
    """How names and titles are matched (defaults chosen on the tuning sample)."""

    title_top_k: int = 3
    name_top_k: int = 3
    sharpness: float = 4.0
    leaf_name_share: float = 0.6
    path_decay: float = 0.5
    context_floor: float = 0.05
    audience: float = 0.25
    title_recall: float = 1.0
    prior: float = 0.5
    prior_floor: float = 0.01


def top_votes(scores: npt.NDArray[np.float32], k: int, sharpness: float) -> Votes:
    """The ``k`` best entries, weighted by (score / best) ** sharpness, summing to best."""
    live = np.flatnonzero(scores > 0)  # (argpartition is slow on many equal zeros)
    if live.size == 0:
        return {}
    k = min(k, live.size)
    top = live[np.argpartition(scores[live], -k)[-k:]]
    best = float(scores[top].max())
    relative = np.clip(scores[top] / best, 0.0, 1.0) ** sharpness
    relative *= best / float(relative.sum())
    return {int(n): float(v) for n, v in zip(top, relative, strict=True) if v > 0}


def decayed(path: Sequence[str], lang: str, decay: float, *, chars: bool) -> Features:
    """Features of a path: the last level at weight 1, each level above ``decay`` times
    the one below it."""
    out: Features = {}
    weight = 1.0
    for level in reversed(path):
        add_into(out, features(level, lang, chars=chars), weight)
        weight *= decay
    return out


class TreeIndex:
    """The standard tree's nodes as searchable text in one language."""

    def __init__(self, tree: StandardTree, lang: str, config: EvidenceConfig) -> None:
        paths = tree.paths[lang]
        own = [features(p[-1], lang, chars=True) for p in paths]
        own_words = [features(p[-1], lang) for p in paths]
        self.lang = lang
        self.config = config
        self.names = SparseIndex(own)
        self.paths = SparseIndex(
            [decayed(p, lang, config.path_decay, chars=True) for p in paths], own
        )
        self.title_paths = SparseIndex(
            [decayed(p, lang, config.path_decay, chars=False) for p in paths], own_words
        )
        self.own_share = SparseIndex(own_words, share=True)
        self._by_name: dict[frozenset[str], list[int]] = {}
        for i, p in enumerate(paths):
            key = name_key(p[-1], lang)
            if key:
                self._by_name.setdefault(key, []).append(i)

    def named(self, name: str) -> list[int]:
        """The nodes whose own name is ``name`` (same words, in any order)."""
        key = name_key(name, self.lang)
        return list(self._by_name.get(key, ())) if key else []


def name_votes(index: TreeIndex, path: Path) -> tuple[Votes, float]:
    """Nodes named like the category: its own name against the nodes' own names and its
    path against their paths. Returns the votes and the best similarity."""
    config = index.config
    lang = index.lang
    own = index.names.scores(index.names.vector(features(path[-1], lang, chars=True)))
    whole = index.paths.scores(
        index.paths.vector(decayed(path, lang, config.path_decay, chars=True))
    )
    scores = config.leaf_name_share * own + (1.0 - config.leaf_name_share) * whole
    votes = top_votes(scores, config.name_top_k, config.sharpness)
    return votes, max(votes.values(), default=0.0)


def specificity(groups: Sequence[Sequence[Features]]) -> dict[str, float]:
    """Per title feature, how few of the catalog's categories (``groups`` of titles) use
    it: IDF over the categories scaled to 1.1 for one category, 0.1 for all."""
    groups = [titles for titles in groups if titles]
    if len(groups) < 2:
        return {}
    df = document_frequencies((key for title in titles for key in title) for titles in groups)
    top = math.log(len(groups) + 1)
    return {key: math.log((len(groups) + 1) / (n + 1)) / top + 0.1 for key, n in df.items()}


def title_votes(
    index: TreeIndex, titles: Sequence[Features], specific: Mapping[str, float]
) -> tuple[Votes, float]:
    """Summed votes of the category's titles and their mean best match."""
    config = index.config
    share = document_frequencies(titles)
    n = len(titles)
    weight = {
        key: specific.get(key, 1.0)
        * (config.context_floor + count / n)
        * (config.audience if key in AUDIENCE else 1.0)
        for key, count in share.items()
    }
    votes: Votes = defaultdict(float)
    total = 0.0
    for title in titles:
        query = index.title_paths.vector(title, weight)
        if not query:
            continue
        scores = index.title_paths.scores(query)
        if config.title_recall > 0:
            scores *= index.own_share.scores(dict.fromkeys(title, 1.0)) ** config.title_recall
        top = top_votes(scores, config.title_top_k, config.sharpness)
        for node, value in top.items():
            votes[node] += value
        total += sum(top.values())
    return dict(votes), (total / n if n else 0.0)


def domain_prior(
    tree: StandardTree, weighted_votes: Sequence[tuple[float, Votes]], config: EvidenceConfig
) -> npt.NDArray[np.float64]:
    """Per node, ``(floor + share) ** prior`` of the catalog's vote mass in its depth-2
    branch, scaled so the catalog's main branch is 1; all 1 without votes."""
    if config.prior <= 0:
        return np.ones(len(tree), dtype=np.float64)
    column = tree.chain[:, min(PRIOR_DEPTH, tree.chain.shape[1]) - 1]
    branch = np.where(column >= 0, column, np.arange(len(tree)))
    mass = np.zeros(len(tree), dtype=np.float64)
    for weight, votes in weighted_votes:
        for node, value in votes.items():
            mass[branch[node]] += weight * value
    if mass.sum() <= 0:
        return np.ones(len(tree), dtype=np.float64)
    factor = (config.prior_floor + mass / mass.sum()) ** config.prior
    out: npt.NDArray[np.float64] = (factor / factor.max())[branch]
    return out
