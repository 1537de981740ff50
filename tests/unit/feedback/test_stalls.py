"""The watch for input partitions faust stalled (pure: a stand-in for faust's consumer
state, no broker)."""

from __future__ import annotations

import asyncio
from typing import NamedTuple

from intervaltree import IntervalTree

from workers.feedback.metrics import FeedbackMetrics
from workers.feedback.stalls import (
    BUSY_STALL_S,
    REFETCH_INTERVAL_S,
    STALL_S,
    StallWatch,
    stalled_inputs,
)


class TP(NamedTuple):
    topic: str
    partition: int


class Consumer:
    """What :mod:`workers.feedback.stalls` reads of faust's consumer, and the seeks it is
    asked for."""

    def __init__(
        self,
        committed: dict[TP, int | None],
        highwater: dict[TP, int],
        earliest: dict[TP, int] | None = None,
    ) -> None:
        self._committed_offset: dict[TP, int | None] = dict(committed)
        self._acked: dict[TP, list[int]] = {}
        self._gap: dict[TP, IntervalTree] = {}
        self._highwater = highwater
        self._earliest = earliest or {}
        self.seeks: list[tuple[TP, int]] = []
        self.lookups = 0

    def assignment(self) -> set[TP]:
        return set(self._highwater)

    def highwater(self, tp: TP) -> int | None:
        return self._highwater.get(tp)

    async def earliest_offsets(self, *tps: TP) -> dict[TP, int]:
        self.lookups += 1
        return {tp: self._earliest.get(tp, 0) for tp in tps}

    async def seek(self, tp: TP, offset: int) -> None:
        self.seeks.append((tp, offset))


FB = TP("category.feedback", 1)
CAT = TP("product.categorized", 1)
CHANGELOG = TP("prodcat-feedback-products-changelog", 1)


class Clocked:
    """A watch on a clock the test moves."""

    def __init__(self, consumer: Consumer, topics: set[str]) -> None:
        self.now = 100.0
        self.consumer = consumer
        self.metrics = FeedbackMetrics()
        self.watch = StallWatch(topics, self.metrics, clock=lambda: self.now)

    def check(self, idle_for: float, after_s: float = 0.0) -> list[tuple[TP, int]]:
        self.now += after_s
        asyncio.run(self.watch.check(self.consumer, idle_for))
        return self.consumer.seeks

    def refetched(self) -> float:
        value = self.metrics.registry.get_sample_value("prodcat_feedback_input_refetched_total")
        return 0.0 if value is None else value


def test_a_partition_with_input_neither_committed_nor_acknowledged_is_stalled() -> None:
    c = Consumer({FB: 6, CAT: 40, CHANGELOG: 3}, {FB: 7, CAT: 40, CHANGELOG: 9})
    assert stalled_inputs(c, {FB.topic, CAT.topic}) == [(FB, 6)], "changelogs are not input"
    c._acked[FB] = [6]  # processed, not committed yet: not stalled
    assert stalled_inputs(c, {FB.topic, CAT.topic}) == []
    c._acked[FB] = []
    c._committed_offset[FB] = None  # nothing committed yet: stalled from the log's start
    assert stalled_inputs(c, {FB.topic}) == [(FB, None)]
    c._acked[FB] = [0, 1, 2, 3, 4, 5, 6]
    assert stalled_inputs(c, {FB.topic}) == []
    del c._highwater[CAT]  # never fetched from: no claim
    assert stalled_inputs(c, {CAT.topic}) == []


def test_a_hole_below_processed_messages_is_a_stall_and_known_gaps_are_not() -> None:
    """Messages after the lost one processed: the committed offset cannot pass the hole."""
    c = Consumer({FB: 6}, {FB: 10})
    c._acked[FB] = [9, 8]
    assert stalled_inputs(c, {FB.topic}) == [(FB, 6)]
    c._acked[FB] = [6, 7, 8, 9]  # all processed, the commit is due: no stall
    assert stalled_inputs(c, {FB.topic}) == []
    c._acked[FB] = [6, 9]
    c._gap[FB] = IntervalTree.from_tuples([(7, 9)])  # 7 and 8 absent (compacted away)
    assert stalled_inputs(c, {FB.topic}) == []
    c._gap[FB] = IntervalTree.from_tuples([(7, 8)])
    assert stalled_inputs(c, {FB.topic}) == [(FB, 6)], "8 is still missing"


def test_another_faust_without_that_state_is_left_alone() -> None:
    assert stalled_inputs(object(), {FB.topic}) == []


def test_the_watch_refetches_once_the_stall_lasted() -> None:
    w = Clocked(Consumer({FB: 6}, {FB: 7}), {FB.topic})
    assert w.check(idle_for=60) == [], "seen stalled for the first time"
    assert w.check(idle_for=60, after_s=STALL_S - 0.5) == []
    assert w.check(idle_for=60, after_s=1) == [(FB, 6)], "stalled for STALL_S, the agent idle"
    assert w.refetched() == 1
    assert w.check(idle_for=60, after_s=STALL_S + 1) == [(FB, 6)], "not again so soon"
    w.consumer._committed_offset[FB] = 7  # the refetched message was processed
    assert w.check(idle_for=60, after_s=REFETCH_INTERVAL_S * 2) == [(FB, 6)]
    w.consumer._highwater[FB] = 9  # stalled again, later: fetched again from the new offset
    w.check(idle_for=60)
    assert w.check(idle_for=60, after_s=STALL_S) == [(FB, 6), (FB, 7)]
    assert w.refetched() == 2


def test_a_partition_that_moves_is_not_stalled() -> None:
    w = Clocked(Consumer({FB: 6}, {FB: 50}), {FB.topic})
    for offset in range(7, 20):  # committed offset advancing every check: work in progress
        w.consumer._committed_offset[FB] = offset
        assert w.check(idle_for=60, after_s=STALL_S) == []


def test_a_busy_agent_gets_longer() -> None:
    w = Clocked(Consumer({FB: 6}, {FB: 9}), {FB.topic})
    assert w.check(idle_for=0.0) == []  # first seen stalled
    for _ in range(int(BUSY_STALL_S) - 1):
        assert w.check(idle_for=0.0, after_s=1) == []
    assert w.check(idle_for=0.0, after_s=1) == [(FB, 6)]


def test_without_a_committed_offset_the_partition_is_fetched_from_its_start() -> None:
    w = Clocked(Consumer({FB: None}, {FB: 12}, earliest={FB: 4}), {FB.topic})
    w.check(idle_for=60)
    assert w.check(idle_for=60, after_s=STALL_S) == [(FB, 4)]


def test_a_log_emptied_by_retention_is_not_fetched_again() -> None:
    """Nothing committed and every message deleted: the high watermark is where the log
    starts, there is nothing to fetch (looked up at most every REFETCH_INTERVAL_S)."""
    w = Clocked(Consumer({FB: None}, {FB: 12}, earliest={FB: 12}), {FB.topic})
    for _ in range(int(REFETCH_INTERVAL_S)):
        assert w.check(idle_for=60, after_s=1) == []
    assert w.consumer.lookups == 1
    assert w.refetched() == 0
