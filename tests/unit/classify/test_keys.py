"""workers.classify.keys: messages keyed otherwise than by their product_id are counted and
reported, at most once a minute, and classified as usual."""

from __future__ import annotations

import logging

import pytest

from workers.classify.batch import Outcome
from workers.classify.keys import LOG_INTERVAL_S, KeyCheck
from workers.classify.metrics import ClassifyMetrics
from workers.core.errors import InvalidEventError


class Message:
    def __init__(self, offset: int, key: bytes | None) -> None:
        self._offset, self._key = offset, key

    def topic(self) -> str:
        return "product.updated"

    def partition(self) -> int:
        return 4

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes | None:
        return self._key


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def _count(metrics: ClassifyMetrics, kind: str) -> float:
    value = metrics.registry.get_sample_value("prodcat_key_mismatch_total", {"kind": kind})
    return 0.0 if value is None else value


def test_missing_and_different_keys_are_counted_and_reported_once_a_minute(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics, clock = ClassifyMetrics(), Clock()
    check = KeyCheck(metrics.key_mismatch, clock=clock)
    assert _count(metrics, "missing") == _count(metrics, "differs") == 0  # series exist
    ok = Outcome(key=b"p-1", value=b"{}")
    batch = [Message(10, b"p-1"), Message(11, None), Message(12, b"p-9"), Message(13, None)]
    outcomes = [ok, ok, ok, Outcome(error=InvalidEventError("bad", "$"))]  # 13: dead letter
    with caplog.at_level(logging.WARNING, logger="workers.classify.keys"):
        check.check(batch, outcomes)
        clock.now += 10.0
        check.check(batch, outcomes)  # within the minute: counted, not logged
        clock.now += LOG_INTERVAL_S
        check.check([Message(20, b"other")], [ok])
        check.check([Message(21, b"p-1")], [ok])  # keyed right: nothing
    assert _count(metrics, "missing") == 2
    assert _count(metrics, "differs") == 3
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    assert lines[0].startswith(
        "product.updated[4]@11: message key (none) is not its product_id 'p-1' "
        "(and 1 more such messages since the last report); classified as usual"
    )
    assert lines[1].startswith(
        "product.updated[4]@20: message key 'other' is not its product_id 'p-1' "
        "(and 2 more such messages since the last report)"
    )
    assert caplog.records[0].offset == 11  # type: ignore[attr-defined]
