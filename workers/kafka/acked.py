"""Produce one record and wait until the broker has acknowledged it: for the rare, important
records (the live-model pointer, a canary decision) that must be durable before the caller
acts on them. Not for the hot path, which produces per batch with delivery callbacks."""

from __future__ import annotations

from typing import Any

from confluent_kafka import Producer

from workers.core.errors import ServiceUnavailableError

__all__ = ["produce_acknowledged"]


def produce_acknowledged(
    producer: Producer,
    topic: str,
    value: bytes,
    key: bytes,
    *,
    partition: int,
    timeout_s: float,
    consequence: str = "",
) -> None:
    """Raises :class:`ServiceUnavailableError` (naming the topic, and ``consequence``) when
    the broker refuses the record or does not answer within ``timeout_s``."""
    errors: list[str] = []

    def delivered(err: Any, _msg: Any) -> None:
        if err is not None:
            errors.append(str(err))

    producer.produce(topic, value, key, partition=partition, on_delivery=delivered)
    if producer.flush(timeout_s) != 0:
        errors.append(f"no acknowledgement within {timeout_s:g} s")
    if errors:
        raise ServiceUnavailableError(
            f"writing to {topic} failed: {errors[0]}" + (f"; {consequence}" if consequence else "")
        )
