"""Prometheus metrics of ``prodcat clicks``, in one registry per app."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

from workers.process.metrics import Metrics

__all__ = ["ClicksMetrics"]


class ClicksMetrics(Metrics):
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        super().__init__(registry)
        r = self.registry
        self.consumed = Counter(
            "prodcat_clicks_consumed", "Messages read, by topic.", ["topic"], registry=r
        )
        self.joined = Counter(
            "prodcat_clicks_joined",
            "Search actions joined with their product's category, by action.",
            ["action"],
            registry=r,
        )
        self.labels = Counter(
            "prodcat_clicks_query_labels",
            "Query labels published (set) or withdrawn (tombstone).",
            ["change"],
            registry=r,
        )
        self.dead_lettered = Counter(
            "prodcat_dead_lettered",
            "Inputs sent to the dead-letter topic, by source topic and error class.",
            ["topic", "error_class"],
            registry=r,
        )
        self.ignored = Counter(
            "prodcat_clicks_ignored",
            "Unreadable product.categorized events skipped (not the app's to dead-letter).",
            ["topic"],
            registry=r,
        )
