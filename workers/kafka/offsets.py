"""Which consumed offsets are safe to commit: the at-least-once bookkeeping of the worker.

A consumed message is *done* when the broker has acknowledged every output it
caused (the categorized event and, if any, the review event; or its dead-letter
record). A partition's committable offset is one past the longest run of done
messages from the start of what the tracker holds for it, in consumption order,
so a message whose outputs are still in flight holds back the commit of every
later message of its partition even if their outputs were acknowledged first.

The tracker is pure logic with no Kafka client in it::

    tracker = OffsetTracker()
    handle = tracker.track("product.created", 0, 41, outputs=2)
    ...                                 # produce twice, with ``handle`` as the opaque
    tracker.ack(handle)                 # from each delivery callback
    tracker.ack(handle)
    tracker.committable()               # {("product.created", 0): 42}
    tracker.mark_committed({("product.created", 0): 42})

Acknowledgements hold a reference to their partition's state, so an ack that
arrives after the partition was revoked (:meth:`OffsetTracker.forget`) is ignored
instead of advancing a later assignment of the same partition.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping

from workers.core.errors import ProdcatError

__all__ = ["OffsetOrderError", "OffsetTracker", "Pending", "TopicPartitionKey"]

TopicPartitionKey = tuple[str, int]


class OffsetOrderError(ProdcatError):
    """An offset was tracked that is not after the last one tracked for its partition."""


class _PartitionState:
    __slots__ = ("alive", "committable", "committed", "key", "last_tracked", "order")

    def __init__(self, key: TopicPartitionKey) -> None:
        self.key = key
        self.order: deque[Pending] = deque()
        self.committable: int | None = None  # one past the last contiguous done offset
        self.committed: int | None = None  # what mark_committed last recorded
        self.last_tracked = -1
        self.alive = True


class Pending:
    """One consumed message whose outputs are not all acknowledged yet.

    Pass it as the opaque of every produce call it causes and hand it back to
    :meth:`OffsetTracker.ack` from the delivery callback.
    """

    __slots__ = ("offset", "remaining", "state")

    def __init__(self, state: _PartitionState, offset: int, remaining: int) -> None:
        self.state = state
        self.offset = offset
        self.remaining = remaining

    @property
    def topic(self) -> str:
        return self.state.key[0]

    @property
    def partition(self) -> int:
        return self.state.key[1]

    def __repr__(self) -> str:
        return (
            f"Pending({self.topic!r}, {self.partition}, {self.offset}, remaining={self.remaining})"
        )


class OffsetTracker:
    """Per-partition contiguous completion of consumed messages.

    Not thread-safe: call it from the thread that polls the consumer and the
    producer (delivery callbacks run inside ``poll``/``flush`` on that thread).
    """

    def __init__(self) -> None:
        self._parts: dict[TopicPartitionKey, _PartitionState] = {}
        self._in_flight = 0

    @property
    def in_flight(self) -> int:
        """Outputs produced (or about to be) and not yet acknowledged."""
        return self._in_flight

    def pending_messages(self) -> int:
        """Tracked messages not yet committable (done ones behind an undone one included)."""
        return sum(len(s.order) for s in self._parts.values())

    def partitions(self) -> list[TopicPartitionKey]:
        return list(self._parts)

    def track(
        self, topic: str, partition: int, offset: int, outputs: int, *, first: int | None = None
    ) -> Pending:
        """Register a consumed message that will cause ``outputs`` produced messages; with
        ``first``, the consumed messages ``first..offset`` of the partition together (done
        when all their ``outputs`` are acknowledged, committable as one).

        Offsets of a partition must be tracked in increasing order. ``outputs == 0``
        marks the message done at once (e.g. a message deliberately skipped).
        """
        if outputs < 0:
            raise ValueError(f"outputs must be >= 0, got {outputs}")
        key = (topic, partition)
        state = self._parts.get(key)
        if state is None:
            state = self._parts[key] = _PartitionState(key)
        start = offset if first is None else first
        if start <= state.last_tracked or start > offset:
            raise OffsetOrderError(
                f"{topic}[{partition}] offsets {start}..{offset} tracked after offset "
                f"{state.last_tracked}; offsets of a partition must be tracked in consumption "
                "order"
            )
        state.last_tracked = offset
        pending = Pending(state, offset, outputs)
        if outputs == 0 and not state.order:
            state.committable = offset + 1
        else:
            state.order.append(pending)
            self._in_flight += outputs
        return pending

    def ack(self, pending: Pending) -> bool:
        """One output of ``pending`` was acknowledged by the broker.

        Returns False (and changes nothing) if the partition was forgotten since, or
        if every output of ``pending`` had already been acknowledged.
        """
        state = pending.state
        if not state.alive or pending.remaining <= 0:
            return False
        pending.remaining -= 1
        self._in_flight -= 1
        if pending.remaining == 0:
            order = state.order
            if order and order[0] is pending:
                while order and order[0].remaining <= 0:
                    state.committable = order.popleft().offset + 1
        return True

    def committable(self, *, force: bool = False) -> dict[TopicPartitionKey, int]:
        """Offsets to commit (next offset to read) for partitions that advanced since the
        last :meth:`mark_committed`; with ``force``, for every partition that has one."""
        return self.committable_for(self._parts, force=force)

    def committable_for(
        self, partitions: Iterable[TopicPartitionKey], *, force: bool = False
    ) -> dict[TopicPartitionKey, int]:
        """Like :meth:`committable`, restricted to ``partitions``."""
        out: dict[TopicPartitionKey, int] = {}
        for key in partitions:
            s = self._parts.get(key)
            if (
                s is not None
                and s.committable is not None
                and (force or s.committable != s.committed)
            ):
                out[key] = s.committable
        return out

    def mark_committed(self, offsets: Mapping[TopicPartitionKey, int]) -> None:
        """Record that ``offsets`` were committed (so :meth:`committable` skips them)."""
        for key, offset in offsets.items():
            s = self._parts.get(key)
            if s is not None and (s.committed is None or offset > s.committed):
                s.committed = offset

    def reset_committed(self, partitions: Iterable[TopicPartitionKey]) -> None:
        """A commit of ``partitions`` failed: offer their committable offsets again."""
        for key in partitions:
            s = self._parts.get(key)
            if s is not None:
                s.committed = None

    def forget(self, partitions: Iterable[TopicPartitionKey]) -> int:
        """Drop the state of revoked or lost partitions. Returns the outputs that were
        still unacknowledged (their later acks are ignored)."""
        dropped = 0
        for key in partitions:
            s = self._parts.pop(key, None)
            if s is None:
                continue
            s.alive = False
            dropped += sum(p.remaining for p in s.order if p.remaining > 0)
        self._in_flight -= dropped
        return dropped

    def clear(self) -> None:
        self.forget(list(self._parts))
