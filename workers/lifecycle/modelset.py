"""The models one worker serves at a time: the live version, an optional canary and shadow.

A :class:`ModelSet` is immutable. The classify loop holds one; a swap replaces the whole set
between batches, and each batch keeps the set it began with until its outputs are encoded,
so a batch is never split across two sets.

Canary routing is a stable hash of the ``product_id``: :func:`canary_point` maps an id to a
number in [0, 1) (the first 8 bytes of its SHA-256), and a product goes to the canary when
that number is below ``canary_share``. Every worker, every restart and every language
computes the same point, so a product always sees the same model for a given share, and
raising the share only moves products from the live version to the canary, never back.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from workers.inference.model import Classifier

__all__ = ["ModelSet", "canary_point", "canary_routes"]

_SCALE = float(1 << 64)


def canary_point(product_id: str) -> float:
    """``product_id``'s fixed position in [0, 1): big-endian first 8 bytes of SHA-256 / 2**64."""
    digest = hashlib.sha256(product_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / _SCALE


def canary_routes(product_ids: Sequence[str], share: float) -> list[bool]:
    """True for each product the canary serves at ``share``."""
    if share <= 0.0:
        return [False] * len(product_ids)
    if share >= 1.0:
        return [True] * len(product_ids)
    return [canary_point(pid) < share for pid in product_ids]


@dataclass(frozen=True, slots=True)
class ModelSet:
    """The live classifier plus an optional canary (serving a share) and shadow (compared)."""

    live: Classifier
    canary: Classifier | None = None
    canary_share: float = 0.0
    shadow: Classifier | None = None

    @property
    def version(self) -> str:
        return self.live.version

    @property
    def canary_active(self) -> bool:
        return self.canary is not None and self.canary_share > 0.0

    def classifiers(self) -> dict[str, Classifier]:
        """Every loaded classifier by version."""
        out = {self.live.version: self.live}
        for extra in (self.canary, self.shadow):
            if extra is not None:
                out[extra.version] = extra
        return out

    def info(self) -> dict[str, str]:
        """Labels for the ``prodcat_model`` info metric."""
        return {
            "version": self.live.version,
            "sha256": self.live.bundle.sha256,
            "canary_version": self.canary.version if self.canary_active and self.canary else "",
            "canary_share": f"{self.canary_share:g}" if self.canary_active else "0",
            "shadow_version": self.shadow.version if self.shadow is not None else "",
        }

    def describe(self) -> str:
        text = self.live.version
        if self.canary_active and self.canary is not None:
            text += f" (canary {self.canary.version} at {self.canary_share:.1%})"
        if self.shadow is not None:
            text += f" (shadow {self.shadow.version})"
        return text
