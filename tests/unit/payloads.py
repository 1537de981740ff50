"""Encoded ``product.created`` payloads and stand-in model answers for the pipeline's
unit tests."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np

from workers.core.codec import Codec
from workers.core.events import product_event
from workers.core.product import ProductText
from workers.inference.taxonomy import Decided, Taxonomy, Thresholds


def product_payloads(products: list[tuple[str, str]], codec: Codec) -> list[bytes]:
    """One payload per ``(product_id, title)``, event ids ``e-<i>``, occurred now."""
    now = datetime.now(UTC)
    return [
        codec.encode(
            product_event(ProductText(title), product_id=pid, event_id=f"e-{i}", occurred_at=now)
        )
        for i, (pid, title) in enumerate(products)
    ]


def decided_as(paths: Sequence[tuple[str, ...]], confidence: float) -> Decided:
    """What a stand-in model decides: item ``i`` is the leaf ``paths[i]`` with
    ``confidence`` (a taxonomy of just those leaves; no back-off)."""
    taxonomy = Taxonomy.from_unsorted(paths)
    index = taxonomy.index()
    scores = np.zeros((len(paths), len(taxonomy)), dtype=np.float32)
    scores[np.arange(len(paths)), [index[p] for p in paths]] = confidence
    return taxonomy.decide(scores, Thresholds(), top_k=1)
