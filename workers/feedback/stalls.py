"""The watch for input partitions faust stalled: fetched messages it will never hand to the
agent, found from its consumer's state and fetched again from the committed offset.

faust-streaming 0.15 can lose a fetched message around a rebalance. The fetcher hands a
message to the stream queue while the stream flow is suspended for the rebalance; the queue
is cleared when the flow resumes, but the consumer has already counted the message as read
(its read offset is past it) and its fetch position is past it too, so the message is
neither processed nor acknowledged, and the partition waits for the next rebalance
(faust-streaming issues 629 and 217; seen here after a kill -9 and restart: about one start
in five in the kill -9 test, and on 7 of 12 input partitions when the restarted app had a
backlog in bench/feedback_faults.py, corrections waiting until the group rebalanced again).
When later messages were processed, the lost ones are a hole the committed offset cannot
pass. Either way nothing is committed
past such a message, so fetching the partition again from its committed offset repairs it;
the messages after it are processed a second time, which the app's deterministic output ids
make harmless (at-least-once).

This reads private faust consumer state (``_committed_offset``, ``_acked``, ``_gap``);
with another faust that lacks it the watch does nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection
from typing import Any, Final

from workers.feedback.metrics import FeedbackMetrics

__all__ = ["BUSY_STALL_S", "REFETCH_INTERVAL_S", "STALL_S", "StallWatch", "stalled_inputs"]

log = logging.getLogger(__name__)

STALL_S: Final = 2.0
"""A partition stalled this long, the agent idle as long, is fetched again."""
BUSY_STALL_S: Final = 30.0
"""... and this long while the agent is busy (it may be working through other input)."""
REFETCH_INTERVAL_S: Final = 30.0
"""At most one refetch (or start-of-log look-up) per partition this often."""


def stalled_inputs(consumer: Any, topics: Collection[str]) -> list[tuple[Any, int | None]]:
    """Input partitions with an offset between the committed one and the high watermark
    that is neither acknowledged nor one faust knows to be absent (its gap tree: compacted
    or transaction markers), as (topic partition, committed offset; None when the group has
    committed nothing there yet). While the agent is idle and no rebalance is under way,
    such a partition has messages faust fetched but will never hand to the agent: at its
    end (nothing after them processed), or as a hole (later ones processed, which holds the
    committed offset back for good)."""
    out: list[tuple[Any, int | None]] = []
    try:
        committed_of = consumer._committed_offset
        acked_of = consumer._acked
        assigned = consumer.assignment()
    except AttributeError:  # another faust: no check
        return out
    gaps_of = getattr(consumer, "_gap", {})
    for tp in assigned:
        if tp.topic not in topics:
            continue
        highwater = consumer.highwater(tp)
        if highwater is None:  # not fetched from yet
            continue
        committed = committed_of.get(tp)  # faust keeps None for "nothing" and for 0
        if _first_missing(committed or 0, highwater, acked_of.get(tp), gaps_of.get(tp)) < highwater:
            out.append((tp, committed))
    return out


def _first_missing(start: int, highwater: int, acked: Any, gaps: Any) -> int:
    """The first offset from ``start`` on that is neither acknowledged nor in faust's gap
    tree (``highwater`` when there is none): work in proportion to the acknowledged
    offsets not committed yet."""
    done = set(acked or ())
    offset = start
    while offset < highwater:
        if offset in done:
            offset += 1
            continue
        spans = gaps.at(offset) if gaps else ()
        if not spans:
            break
        offset = max(span.end for span in spans)
    return offset


class StallWatch:
    """Fetches an input partition again once :func:`stalled_inputs` has found it stalled at
    the same offset for :data:`STALL_S` with the agent idle as long (:data:`BUSY_STALL_S`
    while it is busy with other partitions), so a partition whose messages are merely on
    their way, as just after a start, is left alone; at most every
    :data:`REFETCH_INTERVAL_S` per partition. A partition without a committed offset is
    fetched again from the start of its log, unless that start is already the high
    watermark (everything there was deleted by retention)."""

    def __init__(
        self,
        topics: Collection[str],
        metrics: FeedbackMetrics,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.topics = frozenset(topics)
        self.metrics = metrics
        self.clock = clock
        self._since: dict[Any, tuple[int | None, float]] = {}
        self._refetched: dict[Any, float] = {}

    async def check(self, consumer: Any, idle_for: float) -> None:
        """Call from the app's loop (every second or so) while no rebalance is under way;
        ``idle_for``: seconds since the agent last finished a message (0 while busy)."""
        now = self.clock()
        wait = STALL_S if idle_for >= STALL_S else BUSY_STALL_S
        since: dict[Any, tuple[int | None, float]] = {}
        for tp, offset in stalled_inputs(consumer, self.topics):
            seen = self._since.get(tp)
            since[tp] = seen if seen is not None and seen[0] == offset else (offset, now)
        self._since = since
        for tp, (committed, first) in list(since.items()):
            if now - first < wait:
                continue
            last = self._refetched.get(tp)
            if last is not None and now - last < REFETCH_INTERVAL_S:
                continue
            self._refetched[tp] = now
            del self._since[tp]
            offset = committed if committed is not None else await self._log_start(consumer, tp)
            if offset is None:
                continue
            log.warning(
                "%s[%d]: messages from offset %d were fetched but never processed (a faust "
                "rebalance race); fetching them again",
                tp.topic,
                tp.partition,
                offset,
            )
            self.metrics.input_refetched.inc()
            await consumer.seek(tp, offset)

    @staticmethod
    async def _log_start(consumer: Any, tp: Any) -> int | None:
        """Where a partition without a committed offset starts again (None: nothing left
        to fetch there)."""
        start = (await consumer.earliest_offsets(tp)).get(tp)
        highwater = consumer.highwater(tp)
        if start is None or highwater is None or start >= highwater:
            return None
        return int(start)
