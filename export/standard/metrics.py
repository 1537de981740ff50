"""Scores of an alignment against hand-checked answers.

For each source category the gold answer is one standard node plus accepted
alternatives (nodes a reviewer judged equally right). A prediction is a node or
nothing (a category left unmatched). Per catalog:

* **exact**: the prediction is the gold node or an accepted one;
* **depth k**: the prediction's first ``k`` levels equal those of the gold (or an
  accepted) node; a gold node shallower than ``k`` must be matched exactly on its
  own levels;
* **hierarchical P/R/F1** (Kiritchenko et al.): each path is the set of its nodes
  (root to itself); precision = shared / predicted, recall = shared / gold,
  micro-averaged over categories. With accepted alternatives each category uses
  the one giving it the best F1. No prediction adds nothing shared and nothing
  predicted, so it lowers recall only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

Path = tuple[str, ...]


def shared(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the common prefix of two paths."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def f1(predicted: Sequence[str], gold: Sequence[str]) -> float:
    """Hierarchical F1 of one prediction against one gold path (0 for no prediction)."""
    if not predicted or not gold:
        return 0.0
    return 2.0 * shared(predicted, gold) / (len(predicted) + len(gold))


@dataclass(slots=True)
class Tally:
    """Running scores of one group of categories."""

    n: int = 0
    exact: int = 0
    depth1: int = 0
    depth2: int = 0
    shared: int = 0
    predicted: int = 0
    gold: int = 0
    unmatched: int = 0
    flagged: int = 0
    misses: list[tuple[str, str, str]] = field(default_factory=list)

    def add(
        self,
        predicted: Path | None,
        golds: Sequence[Path],
        *,
        flagged: bool = False,
        label: str = "",
    ) -> bool:
        """Count one category; ``golds`` is the gold path then the accepted ones.
        Returns whether the prediction is exact (gold or accepted)."""
        if not golds:
            raise ValueError("a category needs a gold path")
        self.n += 1
        self.flagged += bool(flagged)
        path = tuple(predicted or ())
        if not path:
            self.unmatched += 1
        exact = bool(path) and any(path == tuple(g) for g in golds)
        self.exact += exact
        self.depth1 += any(_prefix_match(path, g, 1) for g in golds)
        self.depth2 += any(_prefix_match(path, g, 2) for g in golds)
        best = max(golds, key=lambda g: (f1(path, g), -len(g)))
        self.shared += shared(path, best)
        self.predicted += len(path)
        self.gold += len(best)
        if not exact:
            self.misses.append((label, " > ".join(path) or "(none)", " > ".join(golds[0])))
        return exact

    @property
    def precision(self) -> float:
        return self.shared / self.predicted if self.predicted else 0.0

    @property
    def recall(self) -> float:
        return self.shared / self.gold if self.gold else 0.0

    @property
    def hf1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def rates(self) -> dict[str, float]:
        n = max(self.n, 1)
        return {
            "exact": self.exact / n,
            "depth1": self.depth1 / n,
            "depth2": self.depth2 / n,
            "hp": self.precision,
            "hr": self.recall,
            "hf1": self.hf1,
        }

    def merge(self, other: Tally) -> None:
        for name in ("n", "exact", "depth1", "depth2", "shared", "predicted", "gold"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.unmatched += other.unmatched
        self.flagged += other.flagged
        self.misses.extend(other.misses)


def _prefix_match(predicted: Path, gold: Sequence[str], k: int) -> bool:
    k = min(k, len(gold))
    return len(predicted) >= k and tuple(predicted[:k]) == tuple(gold[:k])
