"""Prodcat's Redis keys, and the override value the feedback app writes for the classify worker.

Two key families (and a marker) share one Redis::

    {prefix}:override:{product_id}                 written by the feedback app; a person's
                                                   answer, which wins over the model
    {prefix}:result:{model_version}:{content_hash} written by the classify worker; the
                                                   model's answer for that exact product text
    {prefix}:feedback-restored:{app_id}            the feedback app's marker: a field per
                                                   partition whose overrides Redis holds

Both sides build keys here (the hot path takes :func:`override_prefix` and
:func:`result_prefix` once per batch and appends the ids). An override value is a JSON
object with ``category_path`` (a list of names, or an ``"A > B"`` string), and optionally
``category_id`` and ``source``; the fields after those are for people.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import msgspec

from workers.core.categories import CategoryPathError, category_id, parse_category_path

__all__ = [
    "Override",
    "decode_override",
    "encode_override",
    "override_key",
    "override_prefix",
    "restore_marker_key",
    "result_key",
    "result_prefix",
]


def override_prefix(prefix: str) -> str:
    """``{prefix}:override:``, the start of every override key."""
    return f"{prefix}:override:"


def result_prefix(prefix: str, model_version: str) -> str:
    """``{prefix}:result:{model_version}:``, the start of a version's cached results."""
    return f"{prefix}:result:{model_version}:"


def override_key(prefix: str, product_id: str) -> str:
    """Key of a product's override: ``{prefix}:override:{product_id}``."""
    return override_prefix(prefix) + product_id


def restore_marker_key(prefix: str, app_id: str) -> str:
    """``{prefix}:feedback-restored:{app_id}``: a hash the feedback app sets a field in (the
    partition number) once Redis holds every override of that partition; a missing field
    tells it Redis lost keys (:mod:`workers.feedback.restore`)."""
    return f"{prefix}:feedback-restored:{app_id}"


def result_key(prefix: str, model_version: str, content_hash: str) -> str:
    """Key of a cached model answer: ``{prefix}:result:{model_version}:{content_hash}``."""
    return result_prefix(prefix, model_version) + content_hash


@dataclass(frozen=True, slots=True)
class Override:
    """A category chosen by a person for one product (set by the feedback app)."""

    category_id: str
    path: tuple[str, ...]
    source: str | None = None


class _OverrideValue(msgspec.Struct, frozen=True):
    category_path: list[str] | str
    category_id: str | None = None
    source: str | None = None


class _OverrideRecord(msgspec.Struct, frozen=True, kw_only=True):
    """What the feedback app writes (the fields after ``source`` are for people)."""

    category_path: list[str]
    category_id: str
    source: str
    feedback_event_id: str
    occurred_at: str


_DECODER = msgspec.json.Decoder(_OverrideValue)
_ENCODER = msgspec.json.Encoder()


def encode_override(
    path: Sequence[str], *, source: str, feedback_event_id: str, occurred_at: str
) -> bytes:
    """An override value as :func:`decode_override` reads it."""
    return _ENCODER.encode(
        _OverrideRecord(
            category_path=list(path),
            category_id=category_id(tuple(path)),
            source=source,
            feedback_event_id=feedback_event_id,
            occurred_at=occurred_at,
        )
    )


def decode_override(raw: bytes) -> Override | None:
    """Parse an override value; None if it is unreadable (not JSON, or a path that
    :func:`~workers.core.categories.parse_category_path` refuses)."""
    try:
        value = _DECODER.decode(raw)
        path = parse_category_path(value.category_path)
    except (msgspec.DecodeError, UnicodeDecodeError, CategoryPathError, TypeError):
        return None
    return Override(value.category_id or category_id(path), path, value.source)
