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
    dead_letter_headers,
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
    assert [k for k, _ in headers] == list(DLQ_HEADERS)
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
