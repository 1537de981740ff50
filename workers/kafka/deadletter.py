"""Dead-letter records: the original message, unchanged, plus ``prodcat-*`` error headers.

The record keeps the input's key, value and headers, so a fixed event can be
replayed from the dead-letter topic as is; the error headers (schema ``dead-letter.v1``,
names and values defined here) say what was wrong, where the message came from, which
worker rejected it, and when.

The dead-letter topic is created to take anything the inputs take
(:func:`workers.kafka.topics.ensure_prodcat_topics`). Should a record still be too big for
it (an existing topic with a lower ``max.message.bytes``), it goes without its value and
with ``prodcat-value-dropped`` saying so, how big the value was and where the original sits
(:func:`without_value`): never a record that silently lost its bytes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from workers.core.errors import InvalidEventError
from workers.core.events import utc_now

__all__ = [
    "DLQ_HEADERS",
    "DLQ_VALUE_DROPPED",
    "DeadLetter",
    "dead_letter_headers",
    "dead_letter_record",
    "log_dead_letter",
    "without_value",
]

log = logging.getLogger(__name__)

Headers = list[tuple[str, bytes]]

DLQ_ERROR_CLASS: Final = "prodcat-error-class"
DLQ_ERROR_MESSAGE: Final = "prodcat-error-message"
DLQ_ERROR_FIELD: Final = "prodcat-error-field"
DLQ_SOURCE_TOPIC: Final = "prodcat-source-topic"
DLQ_SOURCE_PARTITION: Final = "prodcat-source-partition"
DLQ_SOURCE_OFFSET: Final = "prodcat-source-offset"
DLQ_ATTEMPT: Final = "prodcat-attempt"
DLQ_FAILED_AT: Final = "prodcat-failed-at"
DLQ_WORKER: Final = "prodcat-worker"
DLQ_VALUE_DROPPED: Final = "prodcat-value-dropped"
DLQ_HEADERS: Final = (
    DLQ_ERROR_CLASS,
    DLQ_ERROR_MESSAGE,
    DLQ_ERROR_FIELD,
    DLQ_SOURCE_TOPIC,
    DLQ_SOURCE_PARTITION,
    DLQ_SOURCE_OFFSET,
    DLQ_ATTEMPT,
    DLQ_FAILED_AT,
    DLQ_WORKER,
    DLQ_VALUE_DROPPED,
)
"""Every header of schema ``dead-letter.v1``, in the order they are written;
``prodcat-error-field`` and ``prodcat-value-dropped`` only when they apply."""
DLQ_MESSAGE_MAX_CHARS: Final = 1000
RECORD_OVERHEAD_BYTES: Final = 1024
"""Allowance for a record's framing (batch and record headers, lengths) when its size is
compared with a topic's ``max.message.bytes``."""


def dead_letter_headers(
    error: BaseException,
    *,
    topic: str,
    partition: int,
    offset: int,
    worker: str,
    attempt: int = 1,
    failed_at: datetime | None = None,
) -> list[tuple[str, bytes]]:
    """The ``prodcat-*`` headers of a dead-lettered message (schema ``dead-letter.v1``).

    The message's key and value go to the dead-letter topic unchanged. ``prodcat-error-field``
    is present only for :class:`InvalidEventError`. The message is cut to 1000 chars.
    """
    when = (failed_at or utc_now()).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    headers = [
        (DLQ_ERROR_CLASS, type(error).__name__),
        (DLQ_ERROR_MESSAGE, str(error)[:DLQ_MESSAGE_MAX_CHARS]),
    ]
    if isinstance(error, InvalidEventError):
        headers.append((DLQ_ERROR_FIELD, error.field))
    headers += [
        (DLQ_SOURCE_TOPIC, topic),
        (DLQ_SOURCE_PARTITION, str(partition)),
        (DLQ_SOURCE_OFFSET, str(offset)),
        (DLQ_ATTEMPT, str(attempt)),
        (DLQ_FAILED_AT, when),
        (DLQ_WORKER, worker),
    ]
    return [(name, value.encode()) for name, value in headers]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """What to produce to the dead-letter topic for one rejected input."""

    key: bytes | None
    value: bytes | None
    headers: Headers
    error_class: str

    @property
    def size(self) -> int:
        """Bytes the record takes in a batch, about (key, value, headers, framing)."""
        headers = sum(len(name) + len(value) for name, value in self.headers)
        return len(self.key or b"") + len(self.value or b"") + headers + RECORD_OVERHEAD_BYTES

    @property
    def value_dropped(self) -> bool:
        return any(name == DLQ_VALUE_DROPPED for name, _ in self.headers)


def without_value(record: DeadLetter, why: str) -> DeadLetter:
    """``record`` without its value, and a ``prodcat-value-dropped`` header saying ``why``,
    how big the value was and where the original sits (from the record's source headers)."""
    if record.value is None:
        return record
    found = dict(record.headers)
    topic, partition, offset = (
        found.get(name, b"?").decode("utf-8", "replace")
        for name in (DLQ_SOURCE_TOPIC, DLQ_SOURCE_PARTITION, DLQ_SOURCE_OFFSET)
    )
    where = f"{topic}[{partition}]@{offset}"
    note = (
        f"{len(record.value)} bytes: {why}; the original is at {where} until that topic's "
        "retention deletes it"
    )
    headers = [*record.headers, (DLQ_VALUE_DROPPED, note.encode())]
    return DeadLetter(record.key, None, headers, record.error_class)


def _attempt(headers: Headers | None) -> int:
    """One more than the attempt recorded by an earlier dead-lettering (a replay)."""
    if headers:
        for name, value in reversed(headers):
            if name == DLQ_ATTEMPT and value:
                try:
                    return int(value) + 1
                except ValueError:
                    return 1
    return 1


def dead_letter_record(
    error: BaseException,
    *,
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    headers: Headers | None,
    worker: str,
    failed_at: datetime | None = None,
    max_bytes: int | None = None,
) -> DeadLetter:
    """The dead-letter record of one input: original key/value/headers plus error headers.

    ``prodcat-*`` headers from an earlier dead-lettering are replaced, not repeated. A
    record larger than ``max_bytes`` (the dead-letter topic's ``max.message.bytes``) goes
    :func:`without_value`.
    """
    kept = [
        (n, v if v is not None else b"") for n, v in headers or [] if not n.startswith("prodcat-")
    ]
    added = dead_letter_headers(
        error,
        topic=topic,
        partition=partition,
        offset=offset,
        worker=worker,
        attempt=_attempt(headers),
        failed_at=failed_at,
    )
    record = DeadLetter(key, value, kept + added, type(error).__name__)
    if max_bytes is not None and record.size > max_bytes:
        return without_value(
            record, f"over the dead-letter topic's limit of {max_bytes} bytes (max.message.bytes)"
        )
    return record


def log_dead_letter(error: BaseException, topic: str, partition: int, offset: int) -> None:
    """One warning naming the input's coordinates and the error (fields for JSON logs)."""
    field = getattr(error, "field", None)
    log.warning(
        "dead-lettered %s[%d]@%d: %s: %s%s",
        topic,
        partition,
        offset,
        type(error).__name__,
        error,
        f" (field {field})" if field else "",
        extra={
            "topic": topic,
            "partition": partition,
            "offset": offset,
            "error_class": type(error).__name__,
        },
    )
