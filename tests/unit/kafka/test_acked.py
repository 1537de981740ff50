"""workers.kafka.acked: a record counts as written only once the broker acknowledged it."""

from __future__ import annotations

from typing import Any

import pytest

from workers.core.errors import ServiceUnavailableError
from workers.kafka.acked import produce_acknowledged


class _Producer:
    """Stands in for confluent_kafka.Producer: calls the delivery callback on flush."""

    def __init__(self, error: str | None = None, *, answers: bool = True) -> None:
        self.error, self.answers = error, answers
        self.produced: list[tuple[str, bytes, bytes, int]] = []
        self._callback: Any = None

    def produce(
        self, topic: str, value: bytes, key: bytes, *, partition: int, on_delivery: Any
    ) -> None:
        self.produced.append((topic, value, key, partition))
        self._callback = on_delivery

    def flush(self, timeout: float) -> int:
        if not self.answers:
            return 1
        self._callback(self.error, None)
        return 0


def test_an_acknowledged_record_returns() -> None:
    producer = _Producer()
    produce_acknowledged(
        producer, "prodcat.decisions", b"{}", b"decision:v2", partition=0, timeout_s=1
    )  # type: ignore[arg-type]
    assert producer.produced == [("prodcat.decisions", b"{}", b"decision:v2", 0)]


@pytest.mark.parametrize(
    ("producer", "why"),
    [
        (_Producer("Broker: Not enough in-sync replicas"), "Broker: Not enough in-sync replicas"),
        (_Producer(answers=False), "no acknowledgement within 2 s"),
    ],
)
def test_a_refused_or_unanswered_record_raises_with_the_consequence(
    producer: _Producer, why: str
) -> None:
    with pytest.raises(
        ServiceUnavailableError, match=rf"writing to prodcat.models failed: {why}; retry"
    ):
        produce_acknowledged(
            producer,  # type: ignore[arg-type]
            "prodcat.models",
            b"{}",
            b"live",
            partition=0,
            timeout_s=2,
            consequence="retry",
        )
