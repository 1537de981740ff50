"""The live model as the feedback app sees it: its version, categories and featurizer.

Feedback must name a category of the live model's taxonomy (a leaf or an ancestor), a
label is written only for a leaf, and an override's ``input_hash`` is the featurizer's
content hash: all three come from the live bundle, loaded at start and again whenever the
live version changes (:mod:`workers.feedback.follow`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from workers.feedback.drift import prior_of
from workers.feedback.policy import taxonomy_nodes
from workers.inference.bundle import Bundle
from workers.inference.featurizer import Featurizer

__all__ = ["LiveModel"]


@dataclass(frozen=True, slots=True)
class LiveModel:
    """What the app needs of the live bundle."""

    version: str
    nodes: frozenset[tuple[str, ...]]
    leaves: frozenset[tuple[str, ...]]
    featurizer: Featurizer
    prior: Mapping[str, float] | None = None
    """Training share per leaf (formatted path), for the drift metric; None when unknown."""

    @classmethod
    def of(cls, bundle: Bundle) -> LiveModel:
        taxonomy = bundle.taxonomy
        data = bundle.metadata.data
        return cls(
            bundle.version,
            taxonomy_nodes(taxonomy),
            frozenset(taxonomy.leaves),
            Featurizer(bundle.featurizer),
            prior_of(list(taxonomy.leaves), data.leaf_counts) if data is not None else None,
        )
