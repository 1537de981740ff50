"""Prometheus metrics of the feedback app, in one registry per app.

Event counters are plain counters. The quality figures (acceptance rate, corrections per
category, confused pairs, table sizes) are read from the faust tables at scrape time by
:class:`QualityCollector`, so they survive restarts exactly as the tables do. The scrape
runs on the HTTP server's thread; the snapshot itself is taken on the app's event loop
(see ``FeedbackApp.quality_snapshot``), never by iterating a table from another thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from workers.feedback.quality import QualitySnapshot
from workers.process.metrics import Metrics

__all__ = ["FeedbackMetrics", "QualityCollector", "Snapshot"]

log = logging.getLogger(__name__)

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


@dataclass(slots=True)
class Snapshot:
    """What one scrape reports from the tables."""

    quality: QualitySnapshot
    table_keys: dict[str, int] = field(default_factory=dict)
    category_psi: dict[str, float] = field(default_factory=dict)
    """model version -> PSI of its predicted categories against its training prior."""


class QualityCollector(Collector):
    """Gauges computed from a table snapshot at scrape time (nothing when it is None)."""

    def __init__(self, snapshot: Callable[[], Snapshot | None]) -> None:
        self._snapshot = snapshot

    def describe(self) -> list[GaugeMetricFamily]:
        return []  # unchecked collector: families are only known at scrape time

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            snap = self._snapshot()
        except Exception:  # a failed scrape must not break the other metrics
            log.exception("feedback quality snapshot failed")
            snap = None
        if snap is None:
            return
        q = snap.quality
        rate = GaugeMetricFamily(
            "prodcat_feedback_acceptance_rate",
            "Share of a model version's predictions not corrected within the acceptance "
            "window (matured time buckets only).",
            labels=["model_version"],
        )
        matured = GaugeMetricFamily(
            "prodcat_feedback_matured_predictions",
            "Predictions whose acceptance window has passed, by model version.",
            labels=["model_version"],
        )
        corrected = GaugeMetricFamily(
            "prodcat_feedback_matured_corrected",
            "Of those, predictions corrected within the window, by model version.",
            labels=["model_version"],
        )
        for version, counts in sorted(q.acceptance.items()):
            matured.add_metric([version], counts.predictions)
            corrected.add_metric([version], counts.corrections)
            value = q.acceptance_rate(version)
            if value is not None:
                rate.add_metric([version], value)
        pending = GaugeMetricFamily(
            "prodcat_feedback_pending_predictions",
            "Predictions still inside their acceptance window, by model version.",
            labels=["model_version"],
        )
        for version, counts in sorted(q.pending.items()):
            pending.add_metric([version], counts.predictions)
        by_category = {
            name: GaugeMetricFamily(
                f"prodcat_feedback_category_{name}",
                text,
                labels=["model_version", "category"],
            )
            for name, text in (
                ("predictions", "Predictions per predicted category and model version."),
                ("corrections", "Predictions corrected within the window, per category."),
                ("accepts", "Explicit accept feedback, per category and model version."),
            )
        }
        for (version, category), counts in sorted(q.categories.items()):
            labels = [version, category]
            by_category["predictions"].add_metric(labels, counts.predictions)
            by_category["corrections"].add_metric(labels, counts.corrections)
            by_category["accepts"].add_metric(labels, counts.accepts)
        confusions = GaugeMetricFamily(
            "prodcat_feedback_confusions",
            "Most frequent corrections: predicted category to corrected category.",
            labels=["predicted", "corrected"],
        )
        for (predicted, to), n in q.confusions:
            confusions.add_metric([predicted, to], n)
        sizes = GaugeMetricFamily(
            "prodcat_feedback_table_keys", "Keys in each faust table.", labels=["table"]
        )
        for table, n in sorted(snap.table_keys.items()):
            sizes.add_metric([table], n)
        drift = GaugeMetricFamily(
            "prodcat_feedback_category_psi",
            "Population stability index of a model version's predicted categories against "
            "its training prior (0.1-0.25 moderate, above 0.25 a large shift).",
            labels=["model_version"],
        )
        for version, value in sorted(snap.category_psi.items()):
            drift.add_metric([version], value)
        yield from (
            rate,
            matured,
            corrected,
            pending,
            *by_category.values(),
            confusions,
            sizes,
            drift,
        )


class FeedbackMetrics(Metrics):
    """All metrics of one feedback app, registered in :attr:`registry`."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        super().__init__(registry)
        r = self.registry
        self.consumed = Counter(
            "prodcat_feedback_consumed", "Messages consumed, by topic.", ["topic"], registry=r
        )
        self.feedback = Counter(
            "prodcat_feedback_events",
            "Valid feedback events, by source, action and outcome.",
            ["source", "action", "outcome"],
            registry=r,
        )
        self.overrides = Counter(
            "prodcat_feedback_overrides",
            "Overrides written (Redis and a corrected categorized event), by deciding source.",
            ["source"],
            registry=r,
        )
        self.labels = Counter(
            "prodcat_feedback_labels",
            "Training labels published, by deciding source.",
            ["source"],
            registry=r,
        )
        self.new_categories = Counter(
            "prodcat_feedback_new_category_overrides",
            "Overrides naming a category the live model lacks (learnt at the next retrain), "
            "by deciding source. Divided by prodcat_feedback_overrides_total: the share of "
            "corrections the model cannot express.",
            ["source"],
            registry=r,
        )
        self.labels_skipped = Counter(
            "prodcat_feedback_labels_skipped",
            "Overrides that made no training label, by reason.",
            ["reason"],
            registry=r,
        )
        self.dead_lettered = Counter(
            "prodcat_dead_lettered",
            "Inputs sent to the dead-letter topic, by source topic and error class.",
            ["topic", "error_class"],
            registry=r,
        )
        self.ignored = Counter(
            "prodcat_feedback_ignored",
            "Unreadable product/categorized events skipped (the classify worker dead-letters "
            "bad product events itself), by topic.",
            ["topic"],
            registry=r,
        )
        self.parked = Gauge(
            "prodcat_feedback_parked",
            "Feedback events parked until their product is known (this instance's partitions).",
            registry=r,
        )
        self.parked_expired = Counter(
            "prodcat_feedback_parked_expired",
            "Parked feedback dead-lettered because its product did not arrive within "
            "PRODCAT_FEEDBACK_UNKNOWN_GRACE_S.",
            registry=r,
        )
        self.redis_errors = Counter(
            "prodcat_feedback_redis_errors",
            "Failed Redis commands (override writes are retried).",
            registry=r,
        )
        self.redis_available = Gauge(
            "prodcat_feedback_redis_available",
            "1 while Redis answers the app's probe and writes, else 0.",
            registry=r,
        )
        self.overrides_restored = Counter(
            "prodcat_feedback_overrides_restored",
            "Overrides written back into Redis from the tables, by what was wrong "
            "(missing, stale).",
            ["reason"],
            registry=r,
        )
        self.restore_passes = Counter(
            "prodcat_feedback_restore_passes",
            "Comparisons of the tables' overrides with Redis, by trigger (start, "
            "redis_restarted, redis_emptied, periodic).",
            ["trigger"],
            registry=r,
        )
        self.input_refetched = Counter(
            "prodcat_feedback_input_refetched",
            "Input partitions fetched again from their committed offset: faust had dropped a "
            "fetched message (workers.feedback.stalls).",
            registry=r,
        )
        self.overrides_reasserted = Counter(
            "prodcat_feedback_overrides_reasserted",
            "Model answers read after an override (the worker did not find it in Redis): the "
            "override was written again and its answer re-published.",
            registry=r,
        )
        self.override_latency = Histogram(
            "prodcat_feedback_override_latency_seconds",
            "Feedback occurred_at to override in effect: written to Redis and its corrected "
            "categorized event acknowledged by the broker.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )

    def add_collector(self, collector: Collector) -> None:
        self.registry.register(collector)
