"""Dead-letter records: the original message, unchanged, plus ``prodcat-*`` error headers.

The record keeps the input's key, value and headers, so a fixed event can be
replayed from the dead-letter topic as is; the error headers (names from
:mod:`workers.core.events`) say what was wrong, where the message came from, which
worker rejected it, and when.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from workers.core.events import DLQ_ATTEMPT, dead_letter_headers

__all__ = ["DeadLetter", "dead_letter_record", "log_dead_letter"]

log = logging.getLogger(__name__)

Headers = list[tuple[str, bytes]]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """What to produce to the dead-letter topic for one rejected input."""

    key: bytes | None
    value: bytes | None
    headers: Headers
    error_class: str


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
) -> DeadLetter:
    """The dead-letter record of one input: original key/value/headers plus error headers.

    ``prodcat-*`` headers from an earlier dead-lettering are replaced, not repeated.
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
    return DeadLetter(key, value, kept + added, type(error).__name__)


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
