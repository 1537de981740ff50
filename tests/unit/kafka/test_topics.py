"""workers/kafka/topics.py: the README topic table, and ensure_topics against a fake admin."""

from __future__ import annotations

import concurrent.futures
import re
import time
from pathlib import Path
from typing import Any, ClassVar

import pytest
from confluent_kafka import KafkaError, KafkaException

import workers.kafka.topics as topics_mod
from workers.core.errors import ConfigError, ProdcatError, ServiceUnavailableError
from workers.core.settings import Settings
from workers.kafka.topics import (
    DAY_MS,
    DEAD_LETTER_HEADROOM_BYTES,
    TopicSpec,
    ensure_prodcat_topics,
    ensure_topics,
    topic_specs,
)

README = Path(__file__).resolve().parents[3] / "schemas" / "README.md"


def readme_rows() -> dict[str, list[str]]:
    """The topic table of schemas/README.md: topic name -> its cells."""
    rows: dict[str, list[str]] = {}
    for line in README.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 7 and cells[0].startswith("`") and cells[5] in {"delete", "compact"}:
            rows[cells[0].strip("`")] = cells
    return rows


def test_specs_cover_every_topic_setting() -> None:
    settings = Settings()
    names = [spec.name for spec in topic_specs(settings)]
    assert sorted(names) == sorted(settings.topics.model_dump().values())
    assert len(set(names)) == len(names)


def test_readme_table_matches_topic_specs() -> None:
    rows = readme_rows()
    specs = topic_specs(Settings())
    assert set(rows) == {s.name for s in specs}
    default_partitions = Settings().kafka.partitions
    for spec in specs:
        _name, setting, key, _value, partitions, cleanup, retention = rows[spec.name]
        field = next(f for f, v in Settings().topics.model_dump().items() if v == spec.name)
        assert setting == f"`PRODCAT_TOPICS_{field.upper()}`"
        assert spec.config["cleanup.policy"] == cleanup
        if spec.partitions == default_partitions:
            assert partitions == "`PRODCAT_KAFKA_PARTITIONS`"
        else:
            assert partitions == str(spec.partitions)
        if cleanup == "delete":
            days = int(re.fullmatch(r"(\d+) days", retention).group(1))  # type: ignore[union-attr]
            assert int(spec.config["retention.ms"]) == days * DAY_MS
        else:
            assert "retention.ms" not in spec.config
        assert "product_id" in key or spec.name in {
            "prodcat.dead-letter",
            "prodcat.models",
            "prodcat.query-models",
            "prodcat.decisions",
        }


def test_specs_follow_settings() -> None:
    settings = Settings().with_overrides(
        kafka={"partitions": 12, "replication_factor": 3},
        topics={"product_created": "shop-a.product.created"},
    )
    specs = {s.name: s for s in topic_specs(settings)}
    assert specs["shop-a.product.created"].partitions == 12
    assert specs["prodcat.models"].partitions == 1
    assert {s.replication_factor for s in specs.values()} == {3}
    assert specs["category.labels"].config == {"cleanup.policy": "compact"}
    assert specs["prodcat.dead-letter"].config["retention.ms"] == str(14 * DAY_MS)


# --------------------------------------------------------------------------- ensure_topics


class _Meta:
    def __init__(self, partitions: int) -> None:
        self.partitions = dict.fromkeys(range(partitions))


class FakeAdmin:
    """Stands in for confluent_kafka.admin.AdminClient."""

    existing: ClassVar[dict[str, int]] = {}
    outcomes: ClassVar[dict[str, BaseException | None]] = {}
    list_error: ClassVar[BaseException | None] = None
    created: ClassVar[list[Any]] = []
    limits: ClassVar[dict[str, int]] = {}  # max.message.bytes of existing topics

    def __init__(self, conf: dict[str, Any]) -> None:
        self.conf = conf

    def poll(self, timeout: float) -> int:
        return 0

    def describe_configs(self, resources: list[Any], **kwargs: Any) -> dict[Any, Any]:
        futures: dict[Any, Any] = {}
        for resource in resources:
            future: concurrent.futures.Future[dict[str, Any]] = concurrent.futures.Future()
            limit = self.limits.get(resource.name)
            if limit is None:
                future.set_exception(kafka_error(KafkaError.UNKNOWN_TOPIC_OR_PART))
            else:
                entry = type("ConfigEntry", (), {"value": str(limit)})()
                future.set_result({"max.message.bytes": entry, "cleanup.policy": entry})
            futures[resource] = future
        return futures

    def list_topics(self, timeout: float) -> Any:
        if self.list_error is not None:
            raise self.list_error
        meta = type("Metadata", (), {})()
        meta.topics = {name: _Meta(n) for name, n in self.existing.items()}
        return meta

    def create_topics(self, new_topics: list[Any], **kwargs: Any) -> dict[str, Any]:
        assert kwargs["operation_timeout"] > 0
        futures: dict[str, Any] = {}
        for topic in new_topics:
            FakeAdmin.created.append(topic)
            future: concurrent.futures.Future[None] = concurrent.futures.Future()
            outcome = self.outcomes.get(topic.topic)
            if isinstance(outcome, concurrent.futures.TimeoutError):
                pass  # never completes
            elif outcome is not None:
                future.set_exception(outcome)
            else:
                future.set_result(None)
                limit = topic.config.get("max.message.bytes", BROKER_DEFAULT_LIMIT)
                FakeAdmin.limits[topic.topic] = int(limit)
            futures[topic.topic] = future
        return futures


@pytest.fixture
def admin(monkeypatch: pytest.MonkeyPatch) -> type[FakeAdmin]:
    monkeypatch.setattr(topics_mod, "AdminClient", FakeAdmin)
    FakeAdmin.existing = {}
    FakeAdmin.outcomes = {}
    FakeAdmin.list_error = None
    FakeAdmin.created = []
    FakeAdmin.limits = {}
    return FakeAdmin


SPECS = [
    TopicSpec("product.created", 6, {"cleanup.policy": "delete", "retention.ms": "1"}, 1),
    TopicSpec("prodcat.models", 1, {"cleanup.policy": "compact"}, 1),
]
CONF = {"bootstrap.servers": "broker:9092"}
BROKER_DEFAULT_LIMIT = 1_048_588


def kafka_error(code: int) -> KafkaException:
    return KafkaException(KafkaError(code, "from the fake"))


def test_creates_only_missing_topics(admin: type[FakeAdmin]) -> None:
    admin.existing = {"prodcat.models": 1}
    assert ensure_topics(CONF, SPECS, timeout_s=2) == ["product.created"]
    [created] = admin.created
    assert (created.topic, created.num_partitions, created.replication_factor) == (
        "product.created",
        6,
        1,
    )
    assert created.config == {"cleanup.policy": "delete", "retention.ms": "1"}


def test_nothing_to_do(admin: type[FakeAdmin], caplog: pytest.LogCaptureFixture) -> None:
    admin.existing = {"product.created": 3, "prodcat.models": 1}
    assert ensure_topics(CONF, SPECS, timeout_s=2) == []
    assert admin.created == []
    assert "fewer than the 6 configured" in caplog.text


def test_already_exists_is_fine(admin: type[FakeAdmin]) -> None:
    admin.outcomes = {"product.created": kafka_error(KafkaError.TOPIC_ALREADY_EXISTS)}
    assert ensure_topics(CONF, SPECS, timeout_s=2) == ["prodcat.models"]


@pytest.mark.parametrize(
    ("outcome", "error", "words"),
    [
        (concurrent.futures.TimeoutError(), ServiceUnavailableError, "did not answer within"),
        (kafka_error(KafkaError._TIMED_OUT), ServiceUnavailableError, "PRODCAT_KAFKA_BOOTSTRAP"),
        (
            kafka_error(KafkaError.INVALID_REPLICATION_FACTOR),
            ConfigError,
            "PRODCAT_KAFKA_REPLICATION_FACTOR",
        ),
        (kafka_error(KafkaError.TOPIC_AUTHORIZATION_FAILED), ConfigError, "not allowed"),
        (kafka_error(KafkaError.INVALID_CONFIG), ProdcatError, "creating topic product.created"),
    ],
)
def test_create_failures(
    admin: type[FakeAdmin], outcome: BaseException, error: type[Exception], words: str
) -> None:
    admin.outcomes = {"product.created": outcome}
    started = time.monotonic()
    with pytest.raises(error, match=words):
        ensure_topics(CONF, SPECS, timeout_s=0.3)
    assert time.monotonic() - started < 5


def test_list_failure_is_service_unavailable(admin: type[FakeAdmin]) -> None:
    admin.list_error = kafka_error(KafkaError._TRANSPORT)
    with pytest.raises(ServiceUnavailableError, match=r"broker:9092 did not answer within 2 s"):
        ensure_topics(CONF, SPECS, timeout_s=2)


def test_unreachable_broker_times_out() -> None:
    """A real AdminClient against a closed local port: fails within the timeout, clearly."""
    started = time.monotonic()
    with pytest.raises(ServiceUnavailableError, match=re.escape("127.0.0.1:1")):
        ensure_topics({"bootstrap.servers": "127.0.0.1:1", "log_level": 0}, SPECS, timeout_s=1)
    assert time.monotonic() - started < 10


# --------------------------------------------------------------------------- dead letters


EIGHT_MB = 8 * 1024 * 1024


def test_the_dead_letter_topic_is_created_to_take_the_largest_input(
    admin: type[FakeAdmin],
) -> None:
    settings = Settings()
    t = settings.topics
    admin.existing = {t.product_created: 6, t.product_updated: 6}
    admin.limits = {t.product_created: EIGHT_MB, t.product_updated: BROKER_DEFAULT_LIMIT}
    got = ensure_prodcat_topics(settings, CONF, [t.product_created, t.dead_letter], timeout_s=2)
    assert got == EIGHT_MB + DEAD_LETTER_HEADROOM_BYTES
    [created] = admin.created
    assert created.topic == t.dead_letter
    assert created.config["max.message.bytes"] == str(EIGHT_MB + DEAD_LETTER_HEADROOM_BYTES)
    assert created.config["retention.ms"] == str(14 * DAY_MS)  # the rest as the table says


def test_an_existing_dead_letter_topic_smaller_than_an_input_is_reported(
    admin: type[FakeAdmin], caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings()
    t = settings.topics
    admin.existing = {t.product_created: 6, t.dead_letter: 6}
    admin.limits = {t.product_created: EIGHT_MB, t.dead_letter: BROKER_DEFAULT_LIMIT}
    got = ensure_prodcat_topics(settings, CONF, [t.product_created, t.dead_letter], timeout_s=2)
    assert got == BROKER_DEFAULT_LIMIT
    assert admin.created == []
    [warning] = [r for r in caplog.records if r.name == topics_mod.log.name]
    text = warning.getMessage()
    assert f"{t.dead_letter} takes messages of up to {BROKER_DEFAULT_LIMIT} bytes" in text
    assert f"{t.product_created} takes up to {EIGHT_MB}" in text
    assert "--entity-name prodcat.dead-letter" in text
    assert f"max.message.bytes={EIGHT_MB + DEAD_LETTER_HEADROOM_BYTES}" in text

    caplog.clear()
    admin.limits[t.dead_letter] = EIGHT_MB
    assert ensure_prodcat_topics(settings, CONF, [t.dead_letter], timeout_s=2) == EIGHT_MB
    assert not caplog.records
