"""workers.core.logs: the repeat filter that keeps retry floods out of the log."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from workers.core.logs import RepeatFilter, flush_repeats, setup_logging

# Lines librdkafka writes for every failed connection attempt while a broker is down (as
# confluent-kafka hands them to the logger): the same failure, different numbers.
REFUSED = (
    "FAIL [prodcat-classify-w1#consumer-2] [thrd:127.0.0.1:9092/bootstrap]: "
    "127.0.0.1:9092/bootstrap: Connect to ipv4#127.0.0.1:9092 failed: Connection refused "
    "(after {ms}ms in state CONNECT, {n} identical error(s) suppressed)"
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Captured(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.levelname} {record.name}: {record.getMessage()}")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def captured(clock: Clock) -> Iterator[tuple[Captured, RepeatFilter]]:
    handler = Captured()
    repeats = RepeatFilter(30.0, clock=clock).attach(handler)
    loggers = [logging.getLogger(n) for n in ("prodcat.kafka", "workers.test", "aiokafka")]
    for logger in loggers:
        logger.addHandler(handler)
        logger.propagate = False
        logger.setLevel(logging.DEBUG)
    try:
        yield handler, repeats
    finally:
        for logger in loggers:
            logger.removeHandler(handler)
            logger.propagate = True
            logger.setLevel(logging.NOTSET)


def test_a_retry_flood_is_one_line_then_a_count(
    captured: tuple[Captured, RepeatFilter], clock: Clock
) -> None:
    handler, repeats = captured
    kafka = logging.getLogger("prodcat.kafka")
    for i in range(250):  # 250 retries in 12.5 s
        kafka.error(REFUSED.format(ms=i % 3, n=i))
        clock.now += 0.05
    assert len(handler.lines) == 1
    assert handler.lines[0].startswith("ERROR prodcat.kafka: FAIL [prodcat-classify-w1")
    assert repeats.held_total == 249
    repeats.flush()
    assert len(handler.lines) == 2
    assert handler.lines[1].startswith("ERROR prodcat.kafka: FAIL")
    assert handler.lines[1].endswith("(repeated 249 more times in 12 s)")


def test_after_the_window_the_line_shows_again_with_the_count_before_it(
    captured: tuple[Captured, RepeatFilter], clock: Clock
) -> None:
    handler, _ = captured
    log = logging.getLogger("aiokafka")
    for _ in range(5):
        log.error("Unable connect to node with id 1: [Errno 111] Connect call failed")
        clock.now += 10.0  # 0, 10, 20 held (window 30 s); 30 s: shown again; 40 held
    assert handler.lines == [
        "ERROR aiokafka: Unable connect to node with id 1: [Errno 111] Connect call failed",
        "ERROR aiokafka: Unable connect to node with id 1: [Errno 111] Connect call failed "
        "(repeated 2 more times in 30 s)",
        "ERROR aiokafka: Unable connect to node with id 1: [Errno 111] Connect call failed",
    ]


def test_an_ended_run_is_reported_when_any_later_line_passes(
    captured: tuple[Captured, RepeatFilter], clock: Clock
) -> None:
    handler, _ = captured
    kafka = logging.getLogger("prodcat.kafka")
    own = logging.getLogger("workers.test")
    for i in range(20):
        kafka.warning("Disconnected (after %dms in state UP)", i)
    clock.now += 31.0
    own.info("Kafka brokers reachable again after 31.0 s")
    assert handler.lines == [
        "WARNING prodcat.kafka: Disconnected (after 0ms in state UP)",
        "WARNING prodcat.kafka: Disconnected (after 19ms in state UP) "
        "(repeated 19 more times in 31 s)",
        "INFO workers.test: Kafka brokers reachable again after 31.0 s",
    ]


def test_own_lines_count_as_repeats_only_when_equal_to_the_letter(
    captured: tuple[Captured, RepeatFilter],
) -> None:
    handler, _ = captured
    own = logging.getLogger("workers.test")
    own.info("assigned t[0], t[1]")
    own.info("assigned t[2]")  # a different state change: shown
    own.info("assigned t[2]")  # the very same line: held
    own.warning("assigned t[2]")  # another level: shown
    assert handler.lines == [
        "INFO workers.test: assigned t[0], t[1]",
        "INFO workers.test: assigned t[2]",
        "WARNING workers.test: assigned t[2]",
    ]


def test_distinct_lines_beyond_the_key_limit_are_reported_not_kept(clock: Clock) -> None:
    handler = Captured()
    repeats = RepeatFilter(30.0, clock=clock, max_keys=10).attach(handler)
    log = logging.getLogger("workers.test.limit")
    log.addHandler(handler)
    log.propagate = False
    try:
        for i in range(50):
            log.warning("line %d", i)
            log.warning("line %d", i)  # held
        assert len(repeats._runs) <= 10
        held = [line for line in handler.lines if "repeated" in line]
        assert len(handler.lines) == 50 + len(held)
        repeats.flush()
        summaries = [line for line in handler.lines if "(repeated" in line]
        counts = [int(line.split("(repeated ")[1].split()[0]) for line in summaries]
        assert sum(counts) == 50  # every held-back line is counted once
    finally:
        log.removeHandler(handler)
        log.propagate = True


def test_setup_logging_installs_the_filter_on_the_root_handler(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        setup_logging("INFO", json_lines=True)
        log = logging.getLogger("prodcat.kafka")
        for i in range(100):
            log.error("Connect to ipv4#127.0.0.1:%d failed (after %dms)", 9092, i)
        flush_repeats()
        lines = [json.loads(line) for line in stream.getvalue().splitlines()]
        assert [line["msg"] for line in lines] == [
            "Connect to ipv4#127.0.0.1:9092 failed (after 0ms)",
            "Connect to ipv4#127.0.0.1:9092 failed (after 99ms) (repeated 99 more times in 1 s)",
        ]
        assert {line["level"] for line in lines} == {"ERROR"}
        setup_logging("INFO", repeat_window_s=0)  # every line shows
        assert not any(isinstance(f, RepeatFilter) for f in root.handlers[0].filters)
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
