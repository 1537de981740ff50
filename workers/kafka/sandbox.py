"""Throwaway topics: uniquely named, ready before use, deleted afterwards.

The demo, the integration tests and the benchmarks share brokers with everyone else. Each
of them makes its topics here, under a prefix of its own: :meth:`TopicSandbox.new` (a
unique name) or :meth:`TopicSandbox.create` (the exact names of a topic table). A topic is
handed out only once every partition has a leader and answers a watermark query, so a
process started next never meets a half-made topic. :meth:`TopicSandbox.delete_all`
deletes every topic made or adopted (and, on request, those whose names start with given
prefixes, such as a faust app's changelogs)::

    with TopicSandbox(settings.kafka, "test.my-test") as sandbox:
        topic = sandbox.new(3, name="feedback")
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic  # where it is typed; admin re-exports it

from workers.core.errors import ProdcatError, ServiceUnavailableError
from workers.core.settings import KafkaSettings
from workers.kafka.clients import admin_config, reader_config
from workers.kafka.topics import TopicSpec, ensure_topics

__all__ = ["TopicSandbox", "slug"]

log = logging.getLogger(__name__)

_GONE = KafkaError.UNKNOWN_TOPIC_OR_PART


def slug(text: str, limit: int = 60) -> str:
    """``text`` reduced to characters legal in Kafka topic names (at most ``limit``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")[:limit] or "t"


class TopicSandbox:
    """The topics of one run, test or demo (see the module docstring)."""

    def __init__(self, kafka: KafkaSettings, prefix: str, *, timeout_s: float = 20.0) -> None:
        self.kafka = kafka
        self.prefix = prefix
        self.timeout_s = timeout_s
        self.admin = AdminClient(admin_config(kafka, "sandbox"))
        self.owned: list[str] = []
        self._probe: Any = None

    def __enter__(self) -> TopicSandbox:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.delete_all()

    # ------------------------------------------------------------------ making topics

    def new(
        self,
        partitions: int = 1,
        *,
        name: str | None = None,
        config: Mapping[str, str] | None = None,
    ) -> str:
        """A new, ready topic ``{prefix}.{name}.{random}`` (``{prefix}.{random}`` without a
        name) with ``partitions`` partitions and topic-level ``config``."""
        stem = f"{self.prefix}.{slug(name)}" if name else self.prefix
        topic = f"{stem}.{uuid.uuid4().hex[:12]}"
        spec = TopicSpec(topic, partitions, dict(config or {}))
        futures = self.admin.create_topics(
            [NewTopic(topic, num_partitions=partitions, replication_factor=1, config=spec.config)],
            operation_timeout=self.timeout_s,
        )
        futures[topic].result(timeout=self.timeout_s)
        self.owned.append(topic)
        self.wait_ready([spec])
        return topic

    def create(self, specs: Sequence[TopicSpec]) -> list[str]:
        """The topics of ``specs`` with exactly their names (made if missing), ready."""
        ensure_topics(admin_config(self.kafka, "sandbox"), specs, self.timeout_s)
        self.owned += [s.name for s in specs if s.name not in self.owned]
        self.wait_ready(specs)
        return [s.name for s in specs]

    def adopt(self, topic: str) -> str:
        """Delete ``topic`` with the others (e.g. one a client created by itself)."""
        if topic not in self.owned:
            self.owned.append(topic)
        return topic

    def wait_ready(self, specs: Sequence[TopicSpec]) -> None:
        """Until every partition of ``specs`` has a leader and answers a watermark query."""
        deadline = time.monotonic() + self.timeout_s
        for spec in specs:
            while not self._has_leaders(spec):
                if time.monotonic() > deadline:
                    raise ServiceUnavailableError(
                        f"topic {spec.name} was created but has no leader for every partition "
                        f"after {self.timeout_s:g} s"
                    )
                time.sleep(0.1)
        if self._probe is None:
            self._probe = Consumer(reader_config(self.kafka, "sandbox-probe"))
        pending = [TopicPartition(s.name, p) for s in specs for p in range(s.partitions)]
        while pending:
            try:
                self._probe.get_watermark_offsets(pending[0], timeout=2.0, cached=False)
                pending.pop(0)
            except KafkaException as exc:
                if time.monotonic() > deadline:
                    raise ServiceUnavailableError(
                        f"topic {pending[0].topic} partition {pending[0].partition} not ready "
                        f"after {self.timeout_s:g} s: {exc}"
                    ) from exc
                time.sleep(0.2)

    def _has_leaders(self, spec: TopicSpec) -> bool:
        metadata = self.admin.list_topics(topic=spec.name, timeout=5.0).topics.get(spec.name)
        return (
            metadata is not None
            and metadata.error is None
            and len(metadata.partitions) >= spec.partitions
            and all(p.leader >= 0 for p in metadata.partitions.values())
        )

    # ------------------------------------------------------------------ deleting them

    def delete_all(self, *, also_prefixed: Iterable[str] = (), strict: bool = False) -> None:
        """Delete every topic made or adopted, and every topic whose name starts with one
        of ``also_prefixed``. A topic already gone is fine; other failures are logged, or
        raised as :class:`ProdcatError` with ``strict``."""
        topics = set(self.owned)
        prefixes = tuple(also_prefixed)
        failures: list[str] = []
        if prefixes:
            try:
                listed = self.admin.list_topics(timeout=10).topics
                topics.update(t for t in listed if t.startswith(prefixes))
            except KafkaException as exc:
                failures.append(f"listing topics: {exc}")
        if topics:
            futures = self.admin.delete_topics(sorted(topics), operation_timeout=self.timeout_s)
            for topic, future in futures.items():
                try:
                    future.result(timeout=self.timeout_s)
                except KafkaException as exc:
                    err = exc.args[0]
                    if (
                        isinstance(err, KafkaError)
                        and err.code() == KafkaError.UNKNOWN_TOPIC_OR_PART
                    ):
                        continue
                    failures.append(f"{topic}: {err}")
                except Exception as exc:  # a timeout: the broker may still delete it
                    failures.append(f"{topic}: {exc!r}")
        self.owned.clear()
        if self._probe is not None:
            self._probe.close()
            self._probe = None
        if failures:
            if strict:
                raise ProdcatError("deleting topics failed: " + "; ".join(failures))
            for failure in failures:
                log.warning("deleting topics: %s", failure)
