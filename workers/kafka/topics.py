"""The Kafka topics prodcat uses, and creating the missing ones.

``topic_specs`` is the code form of the topic table in ``schemas/README.md``;
``tests/unit/kafka/test_topics.py`` keeps the two in step.
"""

from __future__ import annotations

import concurrent.futures
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic  # where it is typed; admin re-exports it

from workers.core.errors import ConfigError, ProdcatError, ServiceUnavailableError
from workers.core.settings import Settings

log = logging.getLogger(__name__)

DAY_MS: Final = 24 * 3600 * 1000
EVENT_RETENTION_DAYS: Final = 7
DEAD_LETTER_RETENTION_DAYS: Final = 14
CONTROL_PARTITIONS: Final = 1
"""``prodcat.models`` has one partition: every worker reads all of it, in order."""

_UNREACHABLE: Final = frozenset(
    {
        KafkaError._TIMED_OUT,
        KafkaError._TRANSPORT,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError.REQUEST_TIMED_OUT,
        KafkaError.BROKER_NOT_AVAILABLE,
    }
)
_NOT_ALLOWED: Final = frozenset(
    {KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.CLUSTER_AUTHORIZATION_FAILED}
)


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """A topic as prodcat wants it: name, partition count, topic-level config."""

    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)
    replication_factor: int = 1


def _delete(days: int) -> dict[str, str]:
    return {"cleanup.policy": "delete", "retention.ms": str(days * DAY_MS)}


def _compact() -> dict[str, str]:
    return {"cleanup.policy": "compact"}


def topic_specs(settings: Settings) -> list[TopicSpec]:
    """Every topic prodcat reads or writes, as ``schemas/README.md`` describes them.

    Partitions come from ``PRODCAT_KAFKA_PARTITIONS`` except the single-partition control
    topic; the replication factor from ``PRODCAT_KAFKA_REPLICATION_FACTOR``.
    """
    t = settings.topics
    n = settings.kafka.partitions
    rf = settings.kafka.replication_factor
    rows = [
        (t.product_created, n, _delete(EVENT_RETENTION_DAYS)),
        (t.product_updated, n, _delete(EVENT_RETENTION_DAYS)),
        (t.categorized, n, _delete(EVENT_RETENTION_DAYS)),
        (t.review, n, _delete(EVENT_RETENTION_DAYS)),
        (t.dead_letter, n, _delete(DEAD_LETTER_RETENTION_DAYS)),
        (t.feedback, n, _delete(EVENT_RETENTION_DAYS)),
        (t.labels, n, _compact()),
        (t.models, CONTROL_PARTITIONS, _compact()),
        (t.query_models, CONTROL_PARTITIONS, _compact()),
        (t.clicks, n, _delete(EVENT_RETENTION_DAYS)),
        (t.query_labels, n, _compact()),
    ]
    return [TopicSpec(name, parts, conf, rf) for name, parts, conf in rows]


def ensure_topics(
    admin_conf: Mapping[str, Any], specs: Sequence[TopicSpec], timeout_s: float = 15.0
) -> list[str]:
    """Create the topics of ``specs`` that do not exist yet; return the names created.

    Idempotent and safe to race: a topic another process created meanwhile counts as done.
    Existing topics are left alone (a partition count below the spec is logged).

    Raises :class:`ServiceUnavailableError` when Kafka does not answer within ``timeout_s``
    and :class:`ConfigError` when the cluster refuses the request (replication factor, ACLs).
    """
    deadline = time.monotonic() + timeout_s
    where = admin_conf.get("bootstrap.servers", "?")
    admin = AdminClient(dict(admin_conf))
    try:
        metadata = admin.list_topics(timeout=timeout_s)
    except KafkaException as exc:
        raise _unavailable(where, timeout_s, "listing topics", exc) from exc
    existing = metadata.topics
    missing: list[TopicSpec] = []
    for spec in specs:
        have = existing.get(spec.name)
        if have is None:
            missing.append(spec)
        elif len(have.partitions) < spec.partitions:
            log.warning(
                "topic %s has %d partitions, fewer than the %d configured "
                "(PRODCAT_KAFKA_PARTITIONS); consumers beyond %d stay idle",
                spec.name,
                len(have.partitions),
                spec.partitions,
                len(have.partitions),
            )
    if not missing:
        return []
    remaining = max(deadline - time.monotonic(), 0.1)
    futures = admin.create_topics(
        [
            NewTopic(
                s.name,
                num_partitions=s.partitions,
                replication_factor=s.replication_factor,
                config=dict(s.config),
            )
            for s in missing
        ],
        operation_timeout=remaining,
        request_timeout=remaining,
    )
    created: list[str] = []
    for name, future in futures.items():
        try:
            future.result(timeout=max(deadline - time.monotonic(), 0.1))
        except concurrent.futures.TimeoutError as exc:
            raise _unavailable(where, timeout_s, f"creating topic {name}", exc) from exc
        except KafkaException as exc:
            err = exc.args[0]
            code = err.code() if isinstance(err, KafkaError) else None
            if code == KafkaError.TOPIC_ALREADY_EXISTS:
                continue
            if code in _UNREACHABLE:
                raise _unavailable(where, timeout_s, f"creating topic {name}", exc) from exc
            if code == KafkaError.INVALID_REPLICATION_FACTOR:
                raise ConfigError(
                    f"Kafka refused to create topic {name}: {err}. The replication factor "
                    "must not exceed the number of brokers: lower "
                    "PRODCAT_KAFKA_REPLICATION_FACTOR."
                ) from exc
            if code in _NOT_ALLOWED:
                raise ConfigError(
                    f"not allowed to create topic {name}: {err}. Grant CREATE on the topic "
                    "(or the cluster) to prodcat's principal, or create the topics beforehand "
                    "as listed in schemas/README.md."
                ) from exc
            raise ProdcatError(f"creating topic {name} failed: {err}") from exc
        created.append(name)
        log.info("created topic %s", name)
    return created


def _unavailable(
    where: object, timeout_s: float, doing: str, exc: BaseException
) -> ServiceUnavailableError:
    detail = exc.args[0] if exc.args else type(exc).__name__
    return ServiceUnavailableError(
        f"Kafka at {where} did not answer within {timeout_s:g} s while {doing} ({detail}). "
        "Is the broker up, and is PRODCAT_KAFKA_BOOTSTRAP right?"
    )
