"""Prometheus metrics of the model lifecycle in a classify worker: swaps, rejected bundles,
model time per version and role, the shadow comparison, the control topic.

They live in the worker's registry (:class:`workers.classify.metrics.ClassifyMetrics`
makes them); the model follower (:mod:`workers.lifecycle.swap`) and the batch pipeline
record into them.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from workers.lifecycle.confidence import ConfidenceHistogram

__all__ = ["STAGE_BUCKETS", "LifecycleMetrics"]

STAGE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
"""Buckets of the per-batch stage histograms, seconds."""
_SHIFT_BUCKETS = (-0.5, -0.25, -0.1, -0.05, -0.01, 0.0, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0)


class LifecycleMetrics:
    """Model lifecycle: swaps, rejected bundles, per-version model time, shadow comparison.

    Shadow agreement rate = ``prodcat_shadow_agreed_total / prodcat_shadow_compared_total``
    (same ``live``/``shadow`` labels)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.swaps = Counter(
            "prodcat_model_swaps",
            "Model sets switched in between batches, by the live version now served.",
            ["version"],
            registry=r,
        )
        self.rejected = Counter(
            "prodcat_model_rejected",
            "Bundles refused by a worker, by version and stage (fetch, verify, load, warm, "
            "unpublished); the previous model keeps serving.",
            ["version", "stage"],
            registry=r,
        )
        self.load_seconds = Histogram(
            "prodcat_model_load_seconds",
            "Fetch, verify, load and warm one bundle (off the hot path).",
            buckets=(0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
            registry=r,
        )
        self.swap_seconds = Histogram(
            "prodcat_model_swap_seconds",
            "Time the batch loop spent switching to a new model set.",
            buckets=STAGE_BUCKETS,
            registry=r,
        )
        self.model_seconds = Histogram(
            "prodcat_model_batch_seconds",
            "Model time (featurize, inference, decode) per batch, by version and role "
            "(live, canary, shadow).",
            ["version", "role"],
            buckets=STAGE_BUCKETS,
            registry=r,
        )
        self.served = Counter(
            "prodcat_model_served",
            "Categorized outputs, by the version that served them and its role (live, canary).",
            ["version", "role"],
            registry=r,
        )
        self.shadow_compared = Counter(
            "prodcat_shadow_compared",
            "Distinct product texts both the live and the shadow version answered.",
            ["live", "shadow"],
            registry=r,
        )
        self.shadow_agreed = Counter(
            "prodcat_shadow_agreed",
            "Of those, the texts where both chose the same category.",
            ["live", "shadow"],
            registry=r,
        )
        self.shadow_confidence_shift = Histogram(
            "prodcat_shadow_confidence_shift",
            "Shadow confidence minus live confidence, per compared text.",
            ["live", "shadow"],
            buckets=_SHIFT_BUCKETS,
            registry=r,
        )
        self.shadow_errors = Counter(
            "prodcat_shadow_errors",
            "Batches the shadow version failed on (the live outputs are unaffected).",
            ["shadow"],
            registry=r,
        )
        self.confidence = ConfidenceHistogram()
        r.register(self.confidence)
        self.control_errors = Counter(
            "prodcat_control_errors",
            "Unreadable records on the model control topic (skipped).",
            registry=r,
        )
