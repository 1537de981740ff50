"""workers.kafka.deadletter: the prodcat-* headers of schema dead-letter.v1."""

from __future__ import annotations

from datetime import UTC, datetime

from workers.core.errors import InvalidEventError, PayloadTooLargeError
from workers.kafka.deadletter import (
    DLQ_ERROR_CLASS,
    DLQ_ERROR_FIELD,
    DLQ_ERROR_MESSAGE,
    DLQ_FAILED_AT,
    DLQ_HEADERS,
    DLQ_MESSAGE_MAX_CHARS,
    DLQ_VALUE_DROPPED,
    DeadLetter,
    dead_letter_headers,
    dead_letter_record,
    without_value,
)


def test_dead_letter_headers() -> None:
    error = InvalidEventError("ProductEvent: must not be blank (at $.title)", field="$.title")
    when = datetime(2024, 6, 14, 3, 5, 11, 51000, tzinfo=UTC)
    headers = dead_letter_headers(
        error, topic="product.created", partition=3, offset=1048576, worker="w", failed_at=when
    )
    assert dict(headers) == {
        "prodcat-error-class": b"InvalidEventError",
        "prodcat-error-message": b"ProductEvent: must not be blank (at $.title)",
        "prodcat-error-field": b"$.title",
        "prodcat-source-topic": b"product.created",
        "prodcat-source-partition": b"3",
        "prodcat-source-offset": b"1048576",
        "prodcat-attempt": b"1",
        "prodcat-failed-at": b"2024-06-14T03:05:11.051Z",
        "prodcat-worker": b"w",
    }
    assert [k for k, _ in headers] == [h for h in DLQ_HEADERS if h != DLQ_VALUE_DROPPED]
    too_large = PayloadTooLargeError("x" * 5000)
    cut = dict(dead_letter_headers(too_large, topic="t", partition=0, offset=0, worker="w"))
    assert cut[DLQ_ERROR_CLASS] == b"PayloadTooLargeError"
    assert len(cut[DLQ_ERROR_MESSAGE]) == DLQ_MESSAGE_MAX_CHARS
    assert cut[DLQ_ERROR_FIELD] == b"$"
    other = dict(
        dead_letter_headers(RuntimeError("boom"), topic="t", partition=0, offset=0, worker="w")
    )
    assert DLQ_ERROR_FIELD not in other
    assert datetime.fromisoformat(other[DLQ_FAILED_AT].decode().replace("Z", "+00:00")).tzinfo


def test_a_record_over_the_limit_goes_without_its_value_and_says_where_it_is() -> None:
    error = PayloadTooLargeError("payload of 2097152 bytes exceeds the limit of 65536")
    value = b"x" * 2_097_152

    def record(max_bytes: int) -> DeadLetter:
        return dead_letter_record(
            error,
            topic="product.created",
            partition=3,
            offset=1234,
            key=b"p-1",
            value=value,
            headers=[("trace", b"t-1")],
            worker="classify@w",
            max_bytes=max_bytes,
        )

    kept = record(8 * 1024 * 1024)
    assert kept.value is value and not kept.value_dropped
    assert kept.size > len(value)

    dropped = record(1_048_588)
    assert dropped.value is None and dropped.value_dropped
    assert dropped.key == b"p-1"
    headers = dict(dropped.headers)
    assert headers["trace"] == b"t-1"  # the original's headers stay
    note = headers[DLQ_VALUE_DROPPED].decode()
    assert note.startswith("2097152 bytes: over the dead-letter topic's limit of 1048588 bytes")
    assert "the original is at product.created[3]@1234" in note
    assert dropped.size < 1_048_588
    again = without_value(dropped, "twice")
    assert again is dropped  # no value left to drop: unchanged
