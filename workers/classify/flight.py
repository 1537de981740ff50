"""The batch a classify loop iteration leaves in flight, and marking it revoked.

A backlog batch overlaps: its model runs on the helper thread while the loop produces the
previous batch and consumes the next one, so one batch may be between consume and produce
(:class:`InFlight`). When partitions are revoked meanwhile, the batch must not produce or
track their messages: the :class:`FlightSlot` holding it marks them (the consumer's
revoke callback calls :meth:`FlightSlot.revoke`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from workers.classify.batch import Batch
from workers.kafka.offsets import TopicPartitionKey

__all__ = ["FlightSlot", "InFlight"]


@dataclass(slots=True)
class InFlight:
    """A batch begun (model possibly still running) but not yet produced."""

    messages: list[Any]  # consumed confluent_kafka Messages
    batch: Batch
    started: float
    overlap: bool  # the model runs on the helper thread while the loop consumes the next batch
    revoked: set[TopicPartitionKey] = field(default_factory=set)


class FlightSlot:
    """The batch a loop iteration left in flight, if any (overlapping batches)."""

    __slots__ = ("batch",)

    def __init__(self) -> None:
        self.batch: InFlight | None = None

    def revoke(self, keys: list[TopicPartitionKey]) -> None:
        """Partitions leave us: the batch in flight must not produce or track them."""
        if self.batch is not None:
            self.batch.revoked.update(keys)
