"""workers.kafka.deadletter: dead-letter records keep the original and add error headers."""

from __future__ import annotations

from datetime import UTC, datetime

from workers.core.errors import InvalidEventError, PayloadTooLargeError
from workers.kafka.deadletter import (
    DLQ_ATTEMPT,
    DLQ_ERROR_CLASS,
    DLQ_ERROR_FIELD,
    DLQ_SOURCE_OFFSET,
    DLQ_SOURCE_PARTITION,
    DLQ_SOURCE_TOPIC,
    DLQ_WORKER,
    dead_letter_record,
)


def test_dead_letter_record_keeps_original_and_adds_headers() -> None:
    err = InvalidEventError("ProductEvent: required field is missing (at $.title)", field="$.title")
    rec = dead_letter_record(
        err,
        topic="product.created",
        partition=3,
        offset=42,
        key=b"P-1",
        value=b'{"x":1}',
        headers=[("trace", b"abc")],
        worker="classify@h",
        failed_at=datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
    )
    assert (rec.key, rec.value, rec.error_class) == (b"P-1", b'{"x":1}', "InvalidEventError")
    h = dict(rec.headers)
    assert rec.headers[0] == ("trace", b"abc")  # original headers first
    assert h[DLQ_ERROR_CLASS] == b"InvalidEventError"
    assert h[DLQ_ERROR_FIELD] == b"$.title"
    assert h[DLQ_SOURCE_TOPIC] == b"product.created"
    assert h[DLQ_SOURCE_PARTITION] == b"3"
    assert h[DLQ_SOURCE_OFFSET] == b"42"
    assert h[DLQ_ATTEMPT] == b"1"
    assert h[DLQ_WORKER] == b"classify@h"


def test_dead_letter_replay_counts_attempts_and_replaces_old_headers() -> None:
    first = dead_letter_record(
        PayloadTooLargeError("too big"),
        topic="t",
        partition=0,
        offset=1,
        key=None,
        value=b"x",
        headers=None,
        worker="w",
    )
    again = dead_letter_record(
        RuntimeError("model"),
        topic="t",
        partition=0,
        offset=9,
        key=None,
        value=b"x",
        headers=first.headers,
        worker="w",
    )
    names = [n for n, _ in again.headers]
    assert names.count(DLQ_ATTEMPT) == 1
    assert dict(again.headers)[DLQ_ATTEMPT] == b"2"
    assert DLQ_ERROR_FIELD not in names  # not an InvalidEventError this time
    assert dict(again.headers)[DLQ_ERROR_CLASS] == b"RuntimeError"
