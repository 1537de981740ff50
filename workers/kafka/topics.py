"""The Kafka topics prodcat uses, and creating the missing ones.

``topic_specs`` is the code form of the topic table in ``schemas/README.md``;
``tests/unit/kafka/test_topics.py`` keeps the two in step. :func:`ensure_prodcat_topics`
is what the classify worker and the feedback app call at start: it creates what is
missing, and sizes the dead-letter topic after the inputs (a dead letter is an input's
bytes plus headers, so the topic must take as much as any input topic does).
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
from confluent_kafka.admin._config import ConfigResource  # where they are typed; admin
from confluent_kafka.admin._resource import ResourceType  # re-exports them
from confluent_kafka.cimpl import NewTopic  # where it is typed; admin re-exports it

from workers.core.errors import ConfigError, ProdcatError, ServiceUnavailableError
from workers.core.settings import Settings

log = logging.getLogger(__name__)

DAY_MS: Final = 24 * 3600 * 1000
EVENT_RETENTION_DAYS: Final = 7
DEAD_LETTER_RETENTION_DAYS: Final = 14
FIRST_TRY_S: Final = 2.0
"""How long topic creation waits for Kafka before it says it is waiting."""
MAX_MESSAGE_BYTES: Final = "max.message.bytes"
DEAD_LETTER_HEADROOM_BYTES: Final = 64 * 1024
"""What a dead-letter record may add to the largest input message: the error headers
(about 1.5 kB with a 1000-character message) and framing, with room to spare."""
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
        (t.decisions, CONTROL_PARTITIONS, _compact()),
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
    existing = _list_topics(admin, where, timeout_s, deadline)
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


def message_limits(
    admin_conf: Mapping[str, Any], names: Sequence[str], timeout_s: float = 15.0
) -> dict[str, int]:
    """``max.message.bytes`` of each topic of ``names`` that exists (the broker's default
    when the topic does not set its own); topics that do not exist are left out."""
    if not names:
        return {}
    admin = AdminClient(dict(admin_conf))
    resources = [ConfigResource(ResourceType.TOPIC, name) for name in names]
    futures = admin.describe_configs(resources, request_timeout=timeout_s)
    limits: dict[str, int] = {}
    for resource, future in futures.items():
        try:
            entries = future.result(timeout=timeout_s)
        except KafkaException as exc:
            err = exc.args[0]
            if isinstance(err, KafkaError) and err.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                continue
            raise _unavailable(
                admin_conf.get("bootstrap.servers", "?"), timeout_s, "reading topic configs", exc
            ) from exc
        except concurrent.futures.TimeoutError as exc:
            raise _unavailable(
                admin_conf.get("bootstrap.servers", "?"), timeout_s, "reading topic configs", exc
            ) from exc
        entry = entries.get(MAX_MESSAGE_BYTES)
        if entry is not None and entry.value is not None:
            limits[resource.name] = int(entry.value)
    return limits


def ensure_prodcat_topics(
    settings: Settings,
    admin_conf: Mapping[str, Any],
    names: Sequence[str],
    timeout_s: float = 15.0,
) -> int | None:
    """Create the missing topics among ``names`` as :func:`topic_specs` describes them.

    The dead-letter topic, when among them, is created after the others with a
    ``max.message.bytes`` of the largest one its inputs (``product.created``,
    ``product.updated``, ``category.feedback``) allow plus
    :data:`DEAD_LETTER_HEADROOM_BYTES`; an existing one that takes less than an input is
    reported with what to do. Returns the dead-letter topic's ``max.message.bytes`` (None
    when it is not among ``names``).
    """
    specs = {spec.name: spec for spec in topic_specs(settings)}
    dead_letter = settings.topics.dead_letter
    ensure_topics(admin_conf, [specs[n] for n in names if n != dead_letter], timeout_s)
    if dead_letter not in names:
        return None
    t = settings.topics
    inputs = message_limits(
        admin_conf, [t.product_created, t.product_updated, t.feedback], timeout_s
    )
    largest = max(inputs.values(), default=0)
    spec = specs[dead_letter]
    wanted = largest + DEAD_LETTER_HEADROOM_BYTES
    if largest:
        spec = TopicSpec(
            spec.name,
            spec.partitions,
            {**spec.config, MAX_MESSAGE_BYTES: str(wanted)},
            spec.replication_factor,
        )
    if ensure_topics(admin_conf, [spec], timeout_s) and largest:
        return wanted
    have = message_limits(admin_conf, [dead_letter], timeout_s).get(dead_letter)
    if have is not None and have < largest:
        biggest = max(inputs, key=lambda name: inputs[name])
        log.warning(
            "the dead-letter topic %s takes messages of up to %d bytes (max.message.bytes), "
            "but %s takes up to %d: a dead letter larger than that keeps its headers, not its "
            "value (header %s says where the original is). Raise it: kafka-configs.sh "
            "--bootstrap-server %s --alter --entity-type topics --entity-name %s "
            "--add-config max.message.bytes=%d",
            dead_letter,
            have,
            biggest,
            largest,
            "prodcat-value-dropped",
            admin_conf.get("bootstrap.servers", "?"),
            dead_letter,
            wanted,
        )
    return have


def _list_topics(admin: AdminClient, where: object, timeout_s: float, deadline: float) -> Any:
    """The cluster's topics; one warning if the first :data:`FIRST_TRY_S` pass unanswered
    (then up to ``deadline``), so a user waiting on a broker that is down knows why at once."""
    try:
        return admin.list_topics(timeout=min(FIRST_TRY_S, timeout_s)).topics
    except KafkaException as exc:
        admin.poll(0)  # librdkafka's own lines on why (connection refused, ...) to the log
        left = deadline - time.monotonic()
        if left <= 0.1:
            raise _unavailable(where, timeout_s, "listing topics", exc) from exc
        log.warning(
            "Kafka at %s does not answer yet (%s); waiting up to %.0f s more",
            where,
            exc.args[0] if exc.args else exc,
            left,
        )
    try:
        return admin.list_topics(timeout=left).topics
    except KafkaException as exc:
        admin.poll(0)
        raise _unavailable(where, timeout_s, "listing topics", exc) from exc


def _unavailable(
    where: object, timeout_s: float, doing: str, exc: BaseException
) -> ServiceUnavailableError:
    detail = exc.args[0] if exc.args else type(exc).__name__
    return ServiceUnavailableError(
        f"Kafka at {where} did not answer within {timeout_s:g} s while {doing} ({detail}). "
        "Is the broker up, and is PRODCAT_KAFKA_BOOTSTRAP right?"
    )
