"""Feedback parked until its product is known. Pure code (the app does the I/O).

Kafka orders each topic's partition, not the four input topics together, so the app can read
a correction before the ``product.created``/``product.categorized`` event of its product.
Such feedback is *parked* in the product's table entry (``ProductState.pending``: the raw
message and where it came from, at most :data:`~workers.feedback.state.MAX_PARKED`), so it
survives a restart through the table's changelog. When the product becomes known, the app
applies the parked feedback in order, as live feedback. Feedback parked longer than the
grace period is dead-lettered as ``UnknownProductError``.

A faust table key may only be written while processing an event of the partition that owns
it (faust sends the changelog record to the current event's partition; a timer has no
current event). So expiry is checked lazily: whenever the app processes any event of a
partition, it expires that partition's overdue parked feedback. :class:`ParkedIndex` keeps,
in memory, which products of which partition have parked feedback, so the check costs
nothing when none is due; the app rebuilds it from the table after a start or a rebalance.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

import msgspec

from workers.feedback.state import MAX_PARKED, ParkedFeedback, ProductState

__all__ = ["ParkedIndex", "expire", "park"]


def park(
    state: ProductState | None, item: ParkedFeedback, *, limit: int = MAX_PARKED
) -> ProductState | None:
    """The state with ``item`` parked; the same state when the very message is already parked
    (redelivered); None when ``limit`` items are already parked (dead-letter it at once)."""
    state = state or ProductState()
    for old in state.pending:
        if (old.topic, old.partition, old.offset) == (item.topic, item.partition, item.offset):
            return state
    if len(state.pending) >= limit:
        return None
    return msgspec.structs.replace(state, pending=(*state.pending, item))


def expire(
    state: ProductState, *, now: float, grace_s: float
) -> tuple[tuple[ParkedFeedback, ...], ProductState]:
    """Split the parked feedback older than ``grace_s``: (expired, state keeping the rest)."""
    old = tuple(p for p in state.pending if now - p.parked_at >= grace_s)
    if not old:
        return (), state
    rest = tuple(p for p in state.pending if now - p.parked_at < grace_s)
    return old, msgspec.structs.replace(state, pending=rest)


class ParkedIndex:
    """Per input partition, the products with parked feedback: oldest ``parked_at`` and count.

    In memory only: :meth:`rebuild` fills a partition from the table after a start or a
    rebalance; :meth:`forget` drops partitions that were revoked.
    """

    def __init__(self) -> None:
        self._parts: dict[int, dict[str, tuple[float, int]]] = {}
        self.total = 0
        """Parked feedback items in the index (read by the metrics gauge)."""

    def indexed(self, partition: int) -> bool:
        return partition in self._parts

    def partitions(self) -> list[int]:
        """The partitions indexed now."""
        return list(self._parts)

    def update(self, partition: int, product_id: str, state: ProductState | None) -> None:
        """Record what ``state`` has parked for ``product_id`` (nothing: drop the entry)."""
        entries = self._parts.setdefault(partition, {})
        _, before = entries.pop(product_id, (0.0, 0))
        self.total -= before
        if state is not None and state.pending:
            oldest = min(p.parked_at for p in state.pending)
            entries[product_id] = (oldest, len(state.pending))
            self.total += len(state.pending)

    def rebuild(
        self, partitions: Collection[int], states: Iterable[tuple[str, ProductState]]
    ) -> None:
        """Index ``partitions`` from the table's (product_id, state) pairs, one pass (pairs of
        other partitions are skipped: parked items carry the partition they were read from)."""
        wanted = set(partitions)
        self.forget(wanted)
        for partition in wanted:
            self._parts[partition] = {}
        for product_id, state in states:
            if state.pending and state.pending[0].partition in wanted:
                self.update(state.pending[0].partition, product_id, state)

    def forget(self, partitions: Iterable[int]) -> None:
        for partition in partitions:
            entries = self._parts.pop(partition, {})
            self.total -= sum(n for _, n in entries.values())

    def due(self, partition: int, *, now: float, grace_s: float) -> list[str]:
        """Products of ``partition`` with parked feedback older than ``grace_s``."""
        entries = self._parts.get(partition)
        if not entries:
            return []
        return [pid for pid, (oldest, _) in entries.items() if now - oldest >= grace_s]
