"""``prodcat_model_confidence``: the distribution of the model's confidence per version, a
drift signal beside the feedback app's category PSI (a model that grows unsure of today's
products, or a new version that is, shows here before people correct it).

A batch's confidences are counted into the buckets with one ``numpy`` call
(:meth:`ConfidenceHistogram.observe_batch`), not one ``observe`` per item: the classify
worker's hot path stays per batch. Exposed as an ordinary Prometheus histogram
(``_bucket``/``_sum``/``_count``), so ``histogram_quantile`` and bucket ratios work.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import numpy as np
import numpy.typing as npt
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector

__all__ = ["CONFIDENCE_BUCKETS", "ConfidenceHistogram"]

CONFIDENCE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)
"""Upper bounds of the buckets (``+Inf`` added), for confidences in [0, 1]."""


class ConfidenceHistogram(Collector):
    """Per model version: bucket counts, sum and count of the answers' confidence."""

    NAME = "prodcat_model_confidence"

    def __init__(self) -> None:
        self._edges = np.array(CONFIDENCE_BUCKETS)
        self._lock = threading.Lock()
        self._counts: dict[str, npt.NDArray[np.int64]] = {}
        self._sums: dict[str, float] = {}

    def observe_batch(self, version: str, confidence: npt.ArrayLike) -> None:
        values = np.asarray(confidence, dtype=np.float64)
        if values.size == 0:
            return
        # bucket i counts values <= edge i (Prometheus "le"); the last is +Inf
        index = np.searchsorted(self._edges, values, side="left")
        counts = np.bincount(index, minlength=len(self._edges) + 1).astype(np.int64)
        total = float(values.sum())
        with self._lock:
            have = self._counts.get(version)
            self._counts[version] = counts if have is None else have + counts
            self._sums[version] = self._sums.get(version, 0.0) + total

    def describe(self) -> list[HistogramMetricFamily]:
        return [self._family()]

    def collect(self) -> Iterator[HistogramMetricFamily]:
        family = self._family()
        with self._lock:
            snapshot = [(v, c.copy(), self._sums[v]) for v, c in sorted(self._counts.items())]
        labels = [*(f"{edge:g}" for edge in CONFIDENCE_BUCKETS), "+Inf"]
        for version, counts, total in snapshot:
            cumulative = np.cumsum(counts).tolist()
            family.add_metric(
                [version], list(zip(labels, cumulative, strict=True)), sum_value=total
            )
        yield family

    def _family(self) -> HistogramMetricFamily:
        return HistogramMetricFamily(
            self.NAME,
            "Confidence of the model's answers, by model version (canary and live alike).",
            labels=["version"],
        )
