"""What the demo reads from the classify worker's /metrics and from offsets."""

from __future__ import annotations

import math

import numpy as np
import pytest

from workers.classify.metrics import ClassifyMetrics
from workers.demo.probes import (
    WorkerFigures,
    histogram_bucket,
    histogram_quantile,
    lag_by_partition,
    parse_worker_metrics,
)


def test_quantile_interpolates_inside_the_bucket() -> None:
    buckets = [(0.1, 50.0), (0.2, 90.0), (0.5, 100.0), (math.inf, 100.0)]
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.1)
    assert histogram_quantile(0.7, buckets) == pytest.approx(0.15)
    assert histogram_quantile(0.99, buckets) == pytest.approx(0.2 + 0.3 * 9 / 10)


def test_quantile_in_the_inf_bucket_is_the_highest_bound() -> None:
    buckets = [(0.1, 10.0), (1.0, 20.0), (math.inf, 100.0)]
    assert histogram_quantile(0.99, buckets) == 1.0


def test_quantile_of_an_empty_histogram_is_unknown() -> None:
    assert histogram_quantile(0.99, []) is None
    assert histogram_quantile(0.99, [(0.1, 0.0), (math.inf, 0.0)]) is None
    assert WorkerFigures().latency_quantile_ms(0.99) is None
    assert WorkerFigures().cache_hit_ratio is None


def test_bucket_bounds_the_quantile() -> None:
    """What the histogram knows of a quantile: the bucket it falls in. The demo shows this,
    not a number interpolated inside a wide bucket (1873 ms when 1-2.5 s is all it knows)."""
    buckets = [(0.1, 50.0), (0.25, 90.0), (1.0, 98.0), (2.5, 100.0), (math.inf, 100.0)]
    assert histogram_bucket(0.5, buckets) == (0.0, 0.1)
    assert histogram_bucket(0.9, buckets) == (0.1, 0.25)
    assert histogram_bucket(0.99, buckets) == (1.0, 2.5)
    assert 1.0 <= (histogram_quantile(0.99, buckets) or 0) <= 2.5
    assert histogram_bucket(0.99, [(1.0, 1.0), (math.inf, 100.0)]) == (1.0, math.inf)
    assert histogram_bucket(0.99, []) is None
    assert histogram_bucket(0.99, [(0.1, 0.0), (math.inf, 0.0)]) is None


def test_figures_from_a_real_worker_registry() -> None:
    metrics = ClassifyMetrics()
    rng = np.random.default_rng(3)
    latencies = rng.lognormal(mean=np.log(0.04), sigma=0.6, size=5000)
    for value in latencies:
        metrics.end_to_end_seconds.observe(float(value))
    metrics.cache_hits.inc(30)
    metrics.cache_misses.inc(90)
    metrics.categorized.labels("model").inc(90)
    metrics.categorized.labels("cache").inc(30)
    metrics.set_lag("demo.product.created", 0, 7)

    figures = parse_worker_metrics(metrics.exposition().decode())

    assert figures.cache_hits == 30
    assert figures.cache_misses == 90
    assert figures.cache_hit_ratio == pytest.approx(0.25)
    assert figures.by_source == {"model": 90, "cache": 30}
    assert figures.latency_buckets[-1] == (math.inf, 5000)
    true_p99 = float(np.quantile(latencies, 0.99))
    bounds = [b for b, _ in figures.latency_buckets]
    upper = next(b for b in bounds if b >= true_p99)
    lower = max([0.0, *(b for b in bounds if b < true_p99)])
    estimate = figures.latency_quantile_ms(0.99)
    assert estimate is not None
    assert lower * 1000 <= estimate <= upper * 1000


def test_lag_counts_from_the_committed_offset_or_the_start() -> None:
    high = {("in", 0): 120, ("in", 1): 80, ("in", 2): 40}
    low = {("in", 0): 0, ("in", 1): 0, ("in", 2): 10}
    committed = {("in", 0): 100, ("in", 1): -1001, ("in", 2): 40}  # -1001: no offset yet
    assert lag_by_partition(high, committed, low) == {("in", 0): 20, ("in", 1): 80, ("in", 2): 0}
