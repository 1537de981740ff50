"""A dead letter too large for the dead-letter topic is sent without its value, with a
header saying where the original is, whoever finds it too large: the sender (it knows the
topic's limit), the producer (its own limit) or the broker (a delivery report). The input's
offset still becomes committable and the worker carries on."""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from workers.classify.batch import Outcome
from workers.classify.delivery import OutputSender
from workers.classify.metrics import ClassifyMetrics
from workers.core.errors import PayloadTooLargeError
from workers.core.settings import TopicSettings
from workers.kafka.deadletter import DLQ_SOURCE_OFFSET, DLQ_VALUE_DROPPED
from workers.kafka.offsets import OffsetTracker

LIMIT = 1_048_588  # the broker's default max.message.bytes
BIG = b"{" + b"x" * 2_097_150 + b"}"  # a 2 MB input
TOPICS = TopicSettings(categorized="out", dead_letter="dlq")


class Message:
    def __init__(self, offset: int, value: bytes | None, key: bytes | None = b"p-1") -> None:
        self._offset, self._value, self._key = offset, value, key

    def topic(self) -> str:
        return "product.created"

    def partition(self) -> int:
        return 2

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def headers(self) -> list[tuple[str, bytes]] | None:
        return [("trace", b"t-1")]


class Report:
    """The message of a delivery report."""

    def __init__(self, topic: str) -> None:
        self._topic = topic

    def topic(self) -> str:
        return self._topic

    def key(self) -> bytes:
        return b"p-1"


class Producer:
    """Refuses values over ``local_limit`` at once (as librdkafka's message.max.bytes does)
    and reports values over ``broker_limit`` as refused when delivery reports are served."""

    def __init__(self, *, local_limit: int | None = None, broker_limit: int | None = None):
        self.local_limit, self.broker_limit = local_limit, broker_limit
        self.queued: list[tuple[str, bytes | None, Any, Any]] = []
        self.delivered: list[tuple[str, bytes | None, dict[str, bytes]]] = []

    def produce(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None,
        headers: list[tuple[str, bytes]] | None = None,
        on_delivery: Any = None,
    ) -> None:
        if self.local_limit is not None and len(value or b"") > self.local_limit:
            raise KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE, "too large"))
        self.queued.append((topic, value, headers, on_delivery))

    def poll(self, timeout: float) -> int:
        queued, self.queued = self.queued, []
        for topic, value, headers, callback in queued:
            msg = Report(topic)
            if self.broker_limit is not None and len(value or b"") > self.broker_limit:
                callback(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE, "too large"), msg)
            else:
                self.delivered.append((topic, value, dict(headers or [])))
                callback(None, msg)
        return len(queued)

    def flush(self, timeout: float) -> int:
        self.poll(timeout)
        return len(self.queued)

    def __len__(self) -> int:
        return len(self.queued)


def _send(producer: Producer, max_bytes: int | None) -> tuple[OutputSender, OffsetTracker]:
    tracker = OffsetTracker()
    sender = OutputSender(
        producer, TOPICS, ClassifyMetrics(), tracker, "classify@w", dead_letter_max_bytes=max_bytes
    )
    messages = [Message(40, BIG), Message(41, b'{"ok": true}')]
    outcomes = [
        Outcome(error=PayloadTooLargeError("payload of 2097152 bytes exceeds the limit")),
        Outcome(key=b"p-1", value=b"categorized", occurred_ms=1),
    ]
    sender.send(messages, outcomes, track=True)
    return sender, tracker


@pytest.mark.parametrize(
    ("who", "producer", "max_bytes"),
    [
        ("sender", Producer(broker_limit=LIMIT), LIMIT),
        ("producer", Producer(local_limit=LIMIT), None),
        ("broker", Producer(broker_limit=LIMIT), None),
    ],
)
def test_too_large_for_the_dead_letter_topic(
    who: str, producer: Producer, max_bytes: int | None, caplog: pytest.LogCaptureFixture
) -> None:
    sender, tracker = _send(producer, max_bytes)
    assert sender.flush(deadline=float("inf"))

    [dead] = [(value, headers) for topic, value, headers in producer.delivered if topic == "dlq"]
    value, headers = dead
    assert value is None
    assert headers[DLQ_SOURCE_OFFSET] == b"40" and headers["trace"] == b"t-1"
    note = headers[DLQ_VALUE_DROPPED].decode()
    assert note.startswith("2097152 bytes: ")
    assert "the original is at product.created[2]@40" in note
    assert {"sender": "limit of 1048588", "producer": "producer refused", "broker": "broker"}[
        who
    ] in note
    assert sender.fatal is None  # the worker carries on
    assert tracker.in_flight == 0
    assert tracker.committable() == {("product.created", 2): 42}
    assert any("without its 2097152-byte value" in r.getMessage() for r in caplog.records)


def test_a_dead_letter_that_fits_keeps_its_bytes() -> None:
    producer = Producer(broker_limit=16 * 1024 * 1024)
    sender, tracker = _send(producer, 8 * 1024 * 1024 + 65536)
    assert sender.flush(deadline=float("inf"))
    [(value, headers)] = [(v, h) for t, v, h in producer.delivered if t == "dlq"]
    assert value == BIG and DLQ_VALUE_DROPPED not in headers
    assert tracker.committable() == {("product.created", 2): 42}
