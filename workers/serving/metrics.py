"""Prometheus metrics of ``prodcat serve``, in one registry per server.

Requests are counted by route template (``/v1/products/classify``, ``/v2/models/{name}/infer``),
never by raw path, so the label set stays small. The model lifecycle metrics are the workers'
(:class:`~workers.lifecycle.metrics.LifecycleMetrics`), shared by the product and the query
model: their ``version`` label tells them apart.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from workers.lifecycle.metrics import STAGE_BUCKETS, LifecycleMetrics
from workers.process.metrics import Metrics

__all__ = ["ServeMetrics"]

_REQUEST_BUCKETS = (
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0,
)  # fmt: skip
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class ServeMetrics(Metrics):
    """Every metric of one ``prodcat serve`` process."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        super().__init__(registry)
        r = self.registry
        self.requests = Counter(
            "prodcat_http_requests",
            "HTTP requests answered, by route template, method and status code.",
            ["route", "method", "status"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "prodcat_http_request_seconds",
            "Time from the request's arrival to its last response byte, by route template.",
            ["route"],
            buckets=_REQUEST_BUCKETS,
            registry=r,
        )
        self.items = Counter(
            "prodcat_serve_items",
            "Products or queries answered, by kind and source (model, cache, override).",
            ["kind", "source"],
            registry=r,
        )
        self.batch_size = Histogram(
            "prodcat_serve_batch_size",
            "Items per model batch (the requests gathered into it), by kind.",
            ["kind"],
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self.batch_requests = Histogram(
            "prodcat_serve_batch_requests",
            "Requests gathered into one model batch, by kind.",
            ["kind"],
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self.batch_seconds = Histogram(
            "prodcat_serve_batch_seconds",
            "Time of one batch on the model thread (cache, model, encoding), by kind.",
            ["kind"],
            buckets=STAGE_BUCKETS,
            registry=r,
        )
        self.timeouts = Counter(
            "prodcat_serve_timeouts",
            "Requests answered 503 because PRODCAT_SERVE_REQUEST_TIMEOUT_MS passed, by kind.",
            ["kind"],
            registry=r,
        )
        self.model = Gauge(
            "prodcat_serve_model",
            "1 for the model version each kind is served by (live role).",
            ["kind", "version"],
            registry=r,
        )
        self.cache_errors = Counter(
            "prodcat_cache_errors",
            "Failed Redis calls, by operation (lookup, store).",
            ["operation"],
            registry=r,
        )
        self.cache_available = Gauge(
            "prodcat_cache_available",
            "1 while the Redis cache is used, 0 while its circuit breaker is open.",
            registry=r,
        )
        self.lifecycle = LifecycleMetrics(r)
