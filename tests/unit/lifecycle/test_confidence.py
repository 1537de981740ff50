"""workers.lifecycle.confidence: a batch-at-once histogram that scrapes exactly like
prometheus_client's own Histogram observing each value."""

from __future__ import annotations

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, Histogram

from workers.lifecycle.confidence import CONFIDENCE_BUCKETS, ConfidenceHistogram


def _samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in registry.collect()
        for s in family.samples
        if not s.name.endswith("_created")
    }


def test_batches_scrape_like_one_observe_per_value() -> None:
    rng = np.random.default_rng(3)
    batches = [rng.beta(5, 2, size=n) for n in (512, 77, 1)]
    # values on the bucket edges land in that bucket ("le"), as Prometheus counts them
    batches.append(np.array([0.1, 0.5, 0.99, 1.0, 0.0]))
    ours_registry, theirs_registry = CollectorRegistry(), CollectorRegistry()
    ours = ConfidenceHistogram()
    ours_registry.register(ours)
    theirs = Histogram(
        ConfidenceHistogram.NAME,
        "reference",
        ["version"],
        buckets=CONFIDENCE_BUCKETS,
        registry=theirs_registry,
    )
    for batch in batches:
        ours.observe_batch("v1", batch)
        for value in batch:
            theirs.labels("v1").observe(float(value))
    ours.observe_batch("v2", [])  # an empty batch adds nothing
    got, want = _samples(ours_registry), _samples(theirs_registry)
    assert got == pytest.approx(want, rel=1e-12)  # counts exact; sums to rounding
    assert got[(f"{ConfidenceHistogram.NAME}_count", (("version", "v1"),))] == sum(
        len(b) for b in batches
    )
