"""Prometheus metrics of the classify worker, in one registry per worker.

Every name starts with ``prodcat_``. Hot-path label children are bound once per
topic (:meth:`ClassifyMetrics.topic`) so that the loop does no label lookups.

Per-partition consumer lag is a gauge whose label set is removed when the
partition is revoked or lost, so a scrape after a rebalance only shows the
partitions this worker owns.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from workers.lifecycle.metrics import STAGE_BUCKETS, LifecycleMetrics
from workers.process.metrics import Metrics

__all__ = ["ClassifyMetrics", "TopicCounters"]

_LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)
_BATCH_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)


@dataclass(frozen=True, slots=True)
class TopicCounters:
    """Label children for one topic, bound once."""

    consumed: Counter
    produced: Counter


class ClassifyMetrics(Metrics):
    """All metrics of one classify worker, registered in :attr:`registry`."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        super().__init__(registry)
        r = self.registry
        self.consumed = Counter(
            "prodcat_consumed", "Messages consumed, by topic.", ["topic"], registry=r
        )
        self.produced = Counter(
            "prodcat_produced",
            "Messages acknowledged by the broker, by topic.",
            ["topic"],
            registry=r,
        )
        self.dead_lettered = Counter(
            "prodcat_dead_lettered",
            "Inputs sent to the dead-letter topic, by source topic and error class.",
            ["topic", "error_class"],
            registry=r,
        )
        self.reviewed = Counter(
            "prodcat_reviewed",
            "Outputs also sent for review, by review topic.",
            ["topic"],
            registry=r,
        )
        self.categorized = Counter(
            "prodcat_categorized",
            "Categorized outputs produced, by answer source (model, cache, override).",
            ["source"],
            registry=r,
        )
        self.batch_size = Histogram(
            "prodcat_batch_size", "Messages per consumed batch.", buckets=_BATCH_BUCKETS, registry=r
        )
        self.batches = Counter(
            "prodcat_batches",
            "Batches processed, by mode: inline (classified and produced in one loop "
            "iteration: the worker keeps up) or overlap (a backlog: the model runs beside the "
            "next batch).",
            ["mode"],
            registry=r,
        )
        for mode in ("inline", "overlap"):
            self.batches.labels(mode)  # both series exist from the start, at 0
        self.featurize_seconds = Histogram(
            "prodcat_featurize_seconds",
            "Featurizer time per model batch.",
            buckets=STAGE_BUCKETS,
            registry=r,
        )
        self.inference_seconds = Histogram(
            "prodcat_inference_seconds",
            "onnxruntime time per model batch.",
            buckets=STAGE_BUCKETS,
            registry=r,
        )
        self.batch_seconds = Histogram(
            "prodcat_batch_seconds",
            "Wall time to process one batch (decode to last produce call).",
            buckets=STAGE_BUCKETS,
            registry=r,
        )
        self.end_to_end_seconds = Histogram(
            "prodcat_end_to_end_latency_seconds",
            "Input event occurred_at to broker acknowledgement of its categorized output.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.key_mismatch = Counter(
            "prodcat_key_mismatch",
            "Inputs whose Kafka key is not their product_id, by kind: missing (no key) or "
            "differs (another key). Classified as usual; their order is not guaranteed.",
            ["kind"],
            registry=r,
        )
        for kind in ("missing", "differs"):
            self.key_mismatch.labels(kind)  # both series exist from the start, at 0
        self.cache_hits = Counter(
            "prodcat_cache_hits", "Items answered from the Redis result cache.", registry=r
        )
        self.cache_misses = Counter(
            "prodcat_cache_misses",
            "Items the cache could not answer (including while Redis is skipped).",
            registry=r,
        )
        self.cache_errors = Counter(
            "prodcat_cache_errors", "Failed Redis calls, by operation.", ["operation"], registry=r
        )
        self.overrides = Counter(
            "prodcat_overrides_applied", "Items answered by a stored override.", registry=r
        )
        self.cache_available = Gauge(
            "prodcat_cache_available", "1 while Redis is used, 0 while it is skipped.", registry=r
        )
        self.consumer_lag = Gauge(
            "prodcat_consumer_lag",
            "Messages between the committed offset and the end of each owned partition.",
            ["topic", "partition"],
            registry=r,
        )
        self.rebalances = Counter(
            "prodcat_rebalances", "Rebalance callbacks, by kind.", ["kind"], registry=r
        )
        self.assigned_partitions = Gauge(
            "prodcat_assigned_partitions", "Input partitions owned by this worker.", registry=r
        )
        self.in_flight = Gauge(
            "prodcat_in_flight", "Outputs produced and not yet acknowledged.", registry=r
        )
        self.delivery_errors = Counter(
            "prodcat_delivery_errors",
            "Outputs the broker refused, by topic.",
            ["topic"],
            registry=r,
        )
        self.commits = Counter(
            "prodcat_commits", "Offset commits, by outcome.", ["outcome"], registry=r
        )
        self.poison = Counter(
            "prodcat_poison_items",
            "Items the model failed on, isolated by bisection and dead-lettered.",
            registry=r,
        )
        self.model = Info("prodcat_model", "The model this worker serves.", registry=r)
        self.lifecycle = LifecycleMetrics(r)
        self._topics: dict[str, TopicCounters] = {}
        self._lag_labels: set[tuple[str, str]] = set()

    def topic(self, name: str) -> TopicCounters:
        """Bound consumed/produced children for ``name`` (cached)."""
        found = self._topics.get(name)
        if found is None:
            found = self._topics[name] = TopicCounters(
                self.consumed.labels(topic=name), self.produced.labels(topic=name)
            )
        return found

    def set_lag(self, topic: str, partition: int, lag: int) -> None:
        key = (topic, str(partition))
        self._lag_labels.add(key)
        self.consumer_lag.labels(*key).set(lag)

    def forget_partitions(self, partitions: list[tuple[str, int]]) -> None:
        """Remove the lag series of revoked or lost partitions."""
        for topic, partition in partitions:
            key = (topic, str(partition))
            if key in self._lag_labels:
                self._lag_labels.discard(key)
                self.consumer_lag.remove(*key)

    def lag_partitions(self) -> set[tuple[str, str]]:
        return set(self._lag_labels)
