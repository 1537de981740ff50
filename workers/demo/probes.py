"""What ``prodcat demo`` measures from outside the classify worker.

* :class:`LagProbe`: consumer lag of the classify group per input partition, from the
  group's committed offsets and the partitions' high watermarks (what an operator's lag
  exporter sees; it never joins the group).
* :func:`scrape_worker`: the worker's ``/metrics`` page, reduced to the figures the demo
  shows (:class:`WorkerFigures`): cache hits and misses and the end-to-end latency
  histogram, whose quantiles :func:`histogram_quantile` estimates like Prometheus does and
  :func:`histogram_bucket` bounds by the bucket they fall in.
"""

from __future__ import annotations

import contextlib
import math
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from confluent_kafka import Consumer, KafkaException, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from workers.core.settings import KafkaSettings
from workers.kafka.clients import reader_config

__all__ = [
    "LagProbe",
    "WorkerFigures",
    "histogram_bucket",
    "histogram_quantile",
    "lag_by_partition",
    "parse_worker_metrics",
    "scrape_worker",
]

LATENCY_METRIC = "prodcat_end_to_end_latency_seconds"


def histogram_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """The ``q`` quantile of a cumulative histogram ``[(upper bound, count), ...]``.

    Linear interpolation inside the bucket that holds the rank, as PromQL's
    ``histogram_quantile``; a rank in the ``+Inf`` bucket gives the highest finite bound.
    None when the histogram is empty.
    """
    ordered = sorted(buckets)
    if not ordered or ordered[-1][1] <= 0:
        return None
    rank = q * ordered[-1][1]
    lower, below = 0.0, 0.0
    for upper, count in ordered:
        if count >= rank:
            if math.isinf(upper):
                return lower
            if count == below:
                return upper
            return lower + (upper - lower) * (rank - below) / (count - below)
        lower, below = upper, count
    return lower


def histogram_bucket(
    q: float, buckets: Sequence[tuple[float, float]]
) -> tuple[float, float] | None:
    """``(lower, upper)`` bounds of the bucket of a cumulative histogram that holds its
    ``q`` quantile (``upper`` is ``inf`` for the last); None when it is empty. All the
    histogram knows: :func:`histogram_quantile`'s number is a guess inside these bounds."""
    ordered = sorted(buckets)
    if not ordered or ordered[-1][1] <= 0:
        return None
    rank = q * ordered[-1][1]
    lower = 0.0
    for upper, count in ordered:
        if count >= rank:
            return lower, upper
        lower = upper
    return lower, math.inf


@dataclass(frozen=True, slots=True)
class WorkerFigures:
    """The demo's figures from one scrape of a classify worker."""

    cache_hits: float = 0.0
    cache_misses: float = 0.0
    latency_buckets: tuple[tuple[float, float], ...] = ()
    by_source: Mapping[str, float] = field(default_factory=dict)

    @property
    def cache_hit_ratio(self) -> float | None:
        total = self.cache_hits + self.cache_misses
        return None if total <= 0 else self.cache_hits / total

    def latency_quantile_ms(self, q: float) -> float | None:
        value = histogram_quantile(q, self.latency_buckets)
        return None if value is None else value * 1000.0

    def latency_bucket(self, q: float) -> tuple[float, float] | None:
        """The bucket (seconds) the end-to-end latency's ``q`` quantile falls in."""
        return histogram_bucket(q, self.latency_buckets)


def parse_worker_metrics(text: str) -> WorkerFigures:
    """Read the figures from a Prometheus text exposition of ``workers.classify.metrics``."""
    hits = misses = 0.0
    buckets: list[tuple[float, float]] = []
    by_source: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "prodcat_cache_hits_total":
                hits = sample.value
            elif sample.name == "prodcat_cache_misses_total":
                misses = sample.value
            elif sample.name == f"{LATENCY_METRIC}_bucket":
                buckets.append((float(sample.labels["le"]), sample.value))
            elif sample.name == "prodcat_categorized_total":
                by_source[sample.labels["source"]] = sample.value
    return WorkerFigures(hits, misses, tuple(sorted(buckets)), by_source)


def scrape_worker(port: int, timeout_s: float = 1.0) -> WorkerFigures | None:
    """The figures of the worker serving ``/metrics`` on ``port``; None when unreachable."""
    url = f"http://127.0.0.1:{port}/metrics"
    with (
        contextlib.suppress(urllib.error.URLError, OSError, ValueError),
        urllib.request.urlopen(url, timeout=timeout_s) as resp,
    ):
        return parse_worker_metrics(resp.read().decode("utf-8"))
    return None


def lag_by_partition(
    high: Mapping[tuple[str, int], int],
    committed: Mapping[tuple[str, int], int],
    low: Mapping[tuple[str, int], int],
) -> dict[tuple[str, int], int]:
    """Messages between each partition's committed offset and its high watermark.

    A partition without a committed offset counts from its low watermark (the group reads
    from the earliest message when it has no offset).
    """
    out: dict[tuple[str, int], int] = {}
    for key, hi in high.items():
        start = committed.get(key, -1)
        if start < 0:
            start = low.get(key, 0)
        out[key] = max(hi - start, 0)
    return out


class LagProbe:
    """Lag of consumer group ``group_id`` on ``topics``, read without joining the group."""

    def __init__(self, kafka: KafkaSettings, group_id: str, topics: Sequence[str]) -> None:
        self._consumer = Consumer(reader_config(kafka, "lag-probe", group_id=group_id))
        self._topics = list(topics)
        self._partitions: list[TopicPartition] = []

    def _discover(self, timeout_s: float) -> list[TopicPartition]:
        if not self._partitions:
            meta = self._consumer.list_topics(timeout=timeout_s)
            self._partitions = [
                TopicPartition(t, p)
                for t in self._topics
                if t in meta.topics
                for p in sorted(meta.topics[t].partitions)
            ]
        return self._partitions

    def read(self, timeout_s: float = 2.0) -> dict[tuple[str, int], int] | None:
        """Lag per (topic, partition); None when Kafka did not answer in time."""
        try:
            parts = self._discover(timeout_s)
            if not parts:
                return None
            committed = {
                (tp.topic, tp.partition): tp.offset
                for tp in self._consumer.committed(parts, timeout=timeout_s)
            }
            high: dict[tuple[str, int], int] = {}
            low: dict[tuple[str, int], int] = {}
            for tp in parts:
                lo, hi = self._consumer.get_watermark_offsets(tp, timeout=timeout_s, cached=False)
                high[(tp.topic, tp.partition)] = hi
                low[(tp.topic, tp.partition)] = lo
        except KafkaException:
            return None
        return lag_by_partition(high, committed, low)

    def close(self) -> None:
        self._consumer.close()
