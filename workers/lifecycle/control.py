"""The model control topic (``prodcat.models``): read it, follow it, write to it.

The topic is compacted and has one partition (``schemas/README.md``): key ``version:<v>``
holds that version's ``model.published`` record (a tombstone retires it) and key ``live``
holds the ``model.live`` pointer, newest wins. Readers take no part in a consumer group:
they assign the partition from the beginning, read up to the high watermark
(:meth:`ControlReader.catch_up`), then keep polling (:meth:`ControlReader.poll`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)

from workers.core.codec import Codec
from workers.core.errors import InvalidEventError, ServiceUnavailableError
from workers.core.events import MODEL_LIVE_KEY, ModelLiveEvent, ModelPublishedEvent, message_key
from workers.core.settings import Settings
from workers.kafka.acked import produce_acknowledged
from workers.kafka.clients import admin_config, reader_config, writer_config
from workers.kafka.topics import ensure_topics, topic_specs

__all__ = ["ControlReader", "ControlState", "ControlWriter", "read_control"]

log = logging.getLogger(__name__)

CONTROL_PARTITION = 0
_NO_TOPIC = frozenset(
    {KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_PARTITION, KafkaError._UNKNOWN_TOPIC}
)
_LEADER_PENDING = frozenset(
    {KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE, KafkaError._TIMED_OUT}
)


@dataclass
class ControlState:
    """What the control topic says: every published version and the live pointer."""

    published: dict[str, ModelPublishedEvent] = field(default_factory=dict)
    live: ModelLiveEvent | None = None

    def apply(self, key: bytes | None, value: bytes | None, codec: Codec) -> None:
        """Fold one record in (raises :class:`InvalidEventError` for an unreadable one)."""
        event = codec.decode_control(key, value)
        if event is None:  # tombstone
            if key == MODEL_LIVE_KEY:
                self.live = None
            elif key is not None:
                self.published.pop(key.decode("utf-8", "replace").removeprefix("version:"), None)
        elif isinstance(event, ModelLiveEvent):
            self.live = event
        else:
            self.published[event.version] = event

    @property
    def live_version(self) -> str | None:
        return self.live.version if self.live is not None else None


class ControlReader:
    """Reads ``prodcat.models`` from the start into a :class:`ControlState`, then follows it."""

    def __init__(
        self,
        settings: Settings,
        purpose: str = "reader",
        *,
        on_bad_record: Callable[[], None] | None = None,
    ) -> None:
        self.topic = settings.topics.models
        self.codec = Codec()
        self.state = ControlState()
        self._on_bad = on_bad_record
        # assign() only: the reader never joins a group and commits nothing
        self._consumer = Consumer(reader_config(settings.kafka, f"control-{purpose}"))
        self._assigned = False

    def catch_up(self, timeout_s: float) -> ControlState:
        """Read every record up to the current end of the topic."""
        tp = TopicPartition(self.topic, CONTROL_PARTITION)
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                low, high = self._consumer.get_watermark_offsets(
                    tp, timeout=max(0.1, deadline - time.monotonic())
                )
                break
            except KafkaException as exc:
                err = exc.args[0]
                code = err.code() if isinstance(err, KafkaError) else None
                if code in _NO_TOPIC:
                    return self.state  # nothing was ever published
                # A topic created a moment ago has no leader yet: retry until the deadline.
                if code in _LEADER_PENDING and time.monotonic() < deadline:
                    time.sleep(0.2)
                    continue
                raise ServiceUnavailableError(
                    f"cannot read the model control topic {self.topic} within {timeout_s:g} s "
                    f"({err}); is Kafka up and PRODCAT_TOPICS_MODELS right?"
                ) from exc
        self._assign()
        if high <= low:
            return self.state
        while True:
            self.poll(0.2)
            position = self._consumer.position([tp])[0].offset
            if position >= high:
                return self.state
            if time.monotonic() > deadline:
                raise ServiceUnavailableError(
                    f"read only up to offset {position} of {high} on the model control topic "
                    f"{self.topic} within {timeout_s:g} s"
                )

    def poll(self, timeout_s: float) -> bool:
        """Apply whatever arrived within ``timeout_s``; True when anything did."""
        self._assign()
        messages = self._consumer.consume(100, timeout_s)
        changed = False
        for m in messages:
            err = m.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    log.warning("model control topic %s: %s", self.topic, err)
                continue
            try:
                self.state.apply(m.key(), m.value(), self.codec)
            except InvalidEventError as exc:
                if self._on_bad is not None:
                    self._on_bad()
                log.error(
                    "model control topic %s offset %s: unreadable record skipped (%s)",
                    self.topic,
                    m.offset(),
                    exc,
                )
                continue
            changed = True
        return changed

    def _assign(self) -> None:
        if not self._assigned:
            self._consumer.assign([TopicPartition(self.topic, CONTROL_PARTITION, OFFSET_BEGINNING)])
            self._assigned = True

    def close(self) -> None:
        self._consumer.close()


def read_control(settings: Settings, timeout_s: float = 10.0) -> ControlState:
    """The control topic's current state (one read to the end)."""
    reader = ControlReader(settings, "admin")
    try:
        return reader.catch_up(timeout_s)
    finally:
        reader.close()


class ControlWriter:
    """Writes ``model.published`` and ``model.live`` records (creating the topic if missing)."""

    def __init__(self, settings: Settings, *, timeout_s: float = 15.0) -> None:
        self.topic = settings.topics.models
        self.timeout_s = timeout_s
        ensure_topics(
            admin_config(settings.kafka),
            [s for s in topic_specs(settings) if s.name == self.topic],
            timeout_s,
        )
        self._producer = Producer(writer_config(settings.kafka, "control-writer"))
        self._codec = Codec()

    def write(self, event: ModelPublishedEvent | ModelLiveEvent) -> None:
        """Produce one control record and wait for the broker to acknowledge it."""
        checked = self._codec.check(event)
        produce_acknowledged(
            self._producer,
            self.topic,
            self._codec.encode(checked),
            message_key(checked),
            partition=CONTROL_PARTITION,
            timeout_s=self.timeout_s,
        )
