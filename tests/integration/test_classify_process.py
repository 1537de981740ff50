"""``prodcat classify`` as real processes: SIGTERM drains, kill -9 loses nothing, a second
worker joins mid-stream, and exactly-once mode survives kill -9 without duplicates."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import pytest

from export.data.catalog import Example
from tests.integration.classify_support import (
    Setup,
    WorkerProcess,
    categorized,
    causation_counts,
    committed,
    end_offsets,
    produce_events,
    product_events,
    read_all,
    wait_for,
)
from workers.core.events import ProductEvent

pytestmark = [pytest.mark.integration, pytest.mark.slow]


COPIES = 2  # 2 x 4000 catalog rows = 8000 events per test, fed at about 1700/s


def _events(rows: list[Example], tag: str) -> list[ProductEvent]:
    return [e for copy in range(COPIES) for e in product_events(rows, tag, copy)]


def _outputs_so_far(s: Setup) -> int:
    return sum(end_offsets(s.bootstrap, s.topics["categorized"]).values())


def _all_committed(s: Setup) -> bool:
    topic = s.topics["product_created"]
    ends = end_offsets(s.bootstrap, topic)
    done = committed(s.bootstrap, s.group, topic)
    return all(done.get(p, -1) >= end for p, end in ends.items())


class Feeder:
    """Produces the events in the background at a steady pace, so workers stop, die and join
    while events are still arriving."""

    def __init__(
        self, s: Setup, events: list[ProductEvent], chunk: int = 250, hold_at: int | None = None
    ) -> None:
        self.s, self.events, self.chunk = s, events, chunk
        self.hold_at = hold_at  # pause after this many events until release()
        self.finished = threading.Event()
        self.released = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        topic = self.s.topics["product_created"]
        for i in range(0, len(self.events), self.chunk):
            if self.hold_at is not None and i >= self.hold_at:
                self.released.wait(120)
            produce_events(self.s.bootstrap, topic, self.events[i : i + self.chunk])
            time.sleep(0.15)
        self.finished.set()

    def release(self) -> None:
        self.released.set()

    def start(self) -> Feeder:
        self.thread.start()
        return self

    def join(self) -> None:
        self.thread.join(120)
        assert self.finished.is_set()


def _first_outputs(s: Setup, worker: WorkerProcess, feeder: Feeder, at_least: int = 1000) -> None:
    wait_for(lambda: "assigned" in worker.logs(), 60, "the first worker to get partitions")
    feeder.start()
    wait_for(lambda: _outputs_so_far(s) >= at_least, 60, "first outputs")


def _start(s: Setup, tmp_path: Path, name: str, *args: str) -> WorkerProcess:
    return WorkerProcess(s, tmp_path / f"{name}.log", "--instance", name, *args)


def _stop(p: WorkerProcess) -> None:
    p.signal(signal.SIGTERM)
    rc = p.wait(60)
    assert rc == 0, p.logs()


# Smallest batch that overlaps its model run with the next one: every batch, or the default
# (the feeder's pace gives batches of a few hundred, classified and produced inline).
OVERLAP_MIN = {"overlap": 1, "inline": None}


def _mode(s: Setup, mode: str) -> None:
    value = OVERLAP_MIN[mode]
    if value is not None:
        s.extra.setdefault("classify", {})["overlap_min_batch"] = value


@pytest.mark.parametrize("mode", sorted(OVERLAP_MIN))
def test_sigterm_drains_then_restart_misses_nothing(
    setup: Setup, catalog_rows: list[Example], tmp_path: Path, mode: str
) -> None:
    s = setup
    _mode(s, mode)
    events = _events(catalog_rows, f"term-{mode}")
    feeder = Feeder(s, events)
    first = _start(s, tmp_path, "w1")
    try:
        _first_outputs(s, first, feeder)
        _stop(first)
    finally:
        first.kill()
    assert not feeder.finished.is_set(), "not mid-stream: every event was sent already"
    done_before = _outputs_so_far(s)
    committed_before = sum(
        max(o, 0) for o in committed(s.bootstrap, s.group, s.topics["product_created"]).values()
    )
    # The drain committed exactly what was produced and acknowledged.
    assert committed_before == done_before, first.logs()

    second = _start(s, tmp_path, "w2")
    try:
        feeder.join()
        wait_for(lambda: _all_committed(s), 90, "the restarted worker to finish")
        _stop(second)
    finally:
        second.kill()
    n = len(events)
    counts = causation_counts(categorized(read_all(s.bootstrap, s.topics["categorized"], expect=n)))
    assert set(counts) == {e.event_id for e in events}
    assert max(counts.values()) == 1  # a graceful stop leaves no duplicates


def test_kill9_then_restart_every_input_has_an_output(
    setup: Setup, catalog_rows: list[Example], tmp_path: Path
) -> None:
    s = setup
    events = _events(catalog_rows, "kill")
    feeder = Feeder(s, events)
    first = _start(s, tmp_path, "k1")
    try:
        _first_outputs(s, first, feeder)
    finally:
        first.kill()  # SIGKILL: no drain, no commit
    assert first.proc.returncode == -signal.SIGKILL
    assert not feeder.finished.is_set(), "not mid-stream: every event was sent already"
    second = _start(s, tmp_path, "k2")
    try:
        feeder.join()
        wait_for(lambda: _all_committed(s), 120, "the restarted worker to finish")
        _stop(second)
    finally:
        second.kill()
    n = len(events)
    counts = causation_counts(categorized(read_all(s.bootstrap, s.topics["categorized"], expect=n)))
    assert set(counts) == {e.event_id for e in events}  # at least once


@pytest.mark.parametrize("mode", sorted(OVERLAP_MIN))
def test_second_worker_joins_mid_stream(
    setup: Setup, catalog_rows: list[Example], tmp_path: Path, mode: str
) -> None:
    s = setup
    _mode(s, mode)
    events = _events(catalog_rows, f"join-{mode}")
    feeder = Feeder(s, events, hold_at=len(events) // 2)  # the rest once the second has joined
    a = _start(s, tmp_path, "a")
    b: WorkerProcess | None = None
    try:
        _first_outputs(s, a, feeder)
        b = _start(s, tmp_path, "b")
        wait_for(lambda: "assigned" in b.logs(), 60, "the second worker to get partitions")
        assert not feeder.finished.is_set(), "not mid-stream: every event was sent already"
        feeder.release()
        feeder.join()
        wait_for(lambda: _all_committed(s), 120, "both workers to finish")
        _stop(a)
        _stop(b)
    finally:
        a.kill()
        if b is not None:
            b.kill()
    n = len(events)
    counts = causation_counts(categorized(read_all(s.bootstrap, s.topics["categorized"], expect=n)))
    assert set(counts) == {e.event_id for e in events}
    assert "revoked" in a.logs()  # the rebalance really happened


def test_exactly_once_survives_kill9(
    setup: Setup, catalog_rows: list[Example], tmp_path: Path
) -> None:
    s = setup
    s.extra = {"classify": {"exactly_once": True}}
    events = _events(catalog_rows, "eos")
    feeder = Feeder(s, events)
    first = _start(s, tmp_path, "eos")
    try:
        _first_outputs(s, first, feeder)
    finally:
        first.kill()
    assert not feeder.finished.is_set(), "not mid-stream: every event was sent already"
    # The same instance name: same transactional.id, so the open transaction is aborted.
    second = _start(s, tmp_path, "eos")
    try:
        feeder.join()
        wait_for(lambda: _all_committed(s), 120, "the restarted worker to finish")
        _stop(second)
    finally:
        second.kill()
    n = len(events)
    out = categorized(
        read_all(s.bootstrap, s.topics["categorized"], expect=n, read_committed=True, settle_s=2.0)
    )
    counts = causation_counts(out)
    assert set(counts) == {e.event_id for e in events}
    assert max(counts.values()) == 1, "a read_committed reader saw duplicates"
