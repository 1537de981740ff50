"""Exactly-once batches: outputs and consumed offsets in one Kafka transaction.

Per batch: ``begin_transaction``, produce every output, ``send_offsets_to_transaction``
with the positions after the batch and the consumer's group metadata (KIP-447, so
any worker of the group may own the partitions), ``commit_transaction``. Readers with
``isolation.level=read_committed`` then see each batch's outputs exactly once.

Errors: a retriable error repeats the failing call; an abortable one aborts the
transaction and rewinds the consumer to the batch's first offsets, so the batch is
consumed and processed again; a fatal one (e.g. this producer was fenced by a newer
instance with the same ``transactional.id``) is raised.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from confluent_kafka import KafkaException, TopicPartition

__all__ = ["TransactionalSender"]

log = logging.getLogger(__name__)

R = TypeVar("R")
RETRY_SLEEP_S = 0.1


class TransactionalSender:
    """Runs each batch's produce calls inside one transaction with its offsets."""

    def __init__(self, producer: Any, timeout_s: float) -> None:
        self.producer = producer
        self.timeout_s = timeout_s
        self.aborted = 0

    def init(self) -> None:
        """``init_transactions``: fences older instances and aborts their open transaction."""
        self._retry(self.producer.init_transactions, self.timeout_s)

    def send_batch(
        self, consumer: Any, messages: Sequence[Any], produce: Callable[[], None]
    ) -> bool:
        """Produce the batch's outputs (``produce()``) and commit them with the offsets after
        ``messages``. Returns False if the transaction was aborted and the consumer rewound."""
        first: dict[tuple[str, int], int] = {}
        after: dict[tuple[str, int], int] = {}
        for m in messages:
            key = (m.topic(), m.partition())
            offset = m.offset()
            if key not in first:
                first[key] = offset
            after[key] = offset + 1
        producer = self.producer
        try:
            producer.begin_transaction()
            produce()
            offsets = [TopicPartition(t, p, o) for (t, p), o in after.items()]
            self._retry(
                producer.send_offsets_to_transaction,
                offsets,
                consumer.consumer_group_metadata(),
                self.timeout_s,
            )
            self._retry(producer.commit_transaction, self.timeout_s)
        except KafkaException as exc:
            err = exc.args[0] if exc.args else None
            if err is None or not err.txn_requires_abort():
                raise
            log.warning("transaction aborted (%s); reprocessing the batch", err)
            self.aborted += 1
            self._retry(producer.abort_transaction, self.timeout_s)
            self._rewind(consumer, first)
            return False
        return True

    @staticmethod
    def _rewind(consumer: Any, first: dict[tuple[str, int], int]) -> None:
        for (topic, partition), offset in first.items():
            try:
                consumer.seek(TopicPartition(topic, partition, offset))
            except KafkaException as exc:  # no longer assigned: the new owner starts there
                log.info("rewind of %s[%d] skipped: %s", topic, partition, exc)

    def _retry(self, fn: Callable[..., R], *args: Any) -> R:
        deadline = time.monotonic() + self.timeout_s
        while True:
            try:
                return fn(*args)
            except KafkaException as exc:
                err = exc.args[0] if exc.args else None
                retriable = err is not None and err.retriable() and not err.txn_requires_abort()
                if not retriable or time.monotonic() >= deadline:
                    raise
                log.info("%s: retrying (%s)", getattr(fn, "__name__", "call"), err)
                time.sleep(RETRY_SLEEP_S)
