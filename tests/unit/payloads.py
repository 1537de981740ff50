"""Encoded ``product.created`` payloads and stand-in model answers for the pipeline's
unit tests."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np

from workers.core.codec import Codec
from workers.core.events import product_event
from workers.core.product import ProductText
from workers.inference.standard import STANDARD_FORMAT, MappedCategory, StandardMapping
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


def mapping_for(taxonomy: Taxonomy, *, skip: int = 5) -> StandardMapping:
    """A standard mapping of every category of ``taxonomy`` (leaves and inner nodes), each
    to its own made-up node: statuses cycle ok/low/none, every 7th is reviewed, every
    ``skip``-th category is left out (unmapped) and every 4th matched one has no Google
    category. Distinct fields per category, so a mix-up shows."""
    categories = []
    for i, path in enumerate(dict.fromkeys((*taxonomy.node_paths, *taxonomy.leaves))):
        if skip and i % skip == skip - 1:
            continue
        status = ("ok", "low", "none")[i % 3]
        matched = status != "none" or i % 7 == 0
        categories.append(
            MappedCategory(
                category_path=list(path),
                id=f"gid://shopify/TaxonomyCategory/x-{i}" if matched else None,
                path=["Standard", f"node {i}", *path[-1:]] if matched else None,
                google_id=str(1000 + i) if matched and i % 4 else None,
                google_path=["Google", f"g{i}"] if matched and i % 4 else None,
                score=round(i % 10 / 10, 2),
                status=status,  # type: ignore[arg-type]
                reviewed=i % 7 == 0,
            )
        )
    return StandardMapping(
        format=STANDARD_FORMAT,
        taxonomy="shopify",
        version="2025-01-unstable",
        google_version="2021-09-21",
        categories=categories,
    )
