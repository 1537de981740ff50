"""The Prometheus registry of one process object and its text exposition (``/metrics``).

The classify worker and the feedback app each keep their metrics in a registry of their
own (tests run several in one process); :class:`Metrics` is the part they share.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

__all__ = ["Metrics"]


class Metrics:
    """Holds :attr:`registry` (a new one unless given) and serves its exposition."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)

    def exposition(self) -> bytes:
        """The registry in the Prometheus text format."""
        return generate_latest(self.registry)
