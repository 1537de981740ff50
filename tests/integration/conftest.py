"""Fixtures for tests against the real Kafka and Redis of ``deploy/local/stack``.

Every test here needs the services: when one is down, the fixtures FAIL the
tests (they do not skip) with a message saying how to start it. Start the
stack first with ``deploy/local/stack up``, or point the suite elsewhere with
PRODCAT_KAFKA_BOOTSTRAP and PRODCAT_REDIS_URL.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import redis
from confluent_kafka.admin import AdminClient

from export.data.catalog import Example
from workers.core.errors import ServiceUnavailableError
from workers.core.settings import KafkaSettings
from workers.kafka.clients import admin_config
from workers.kafka.sandbox import TopicSandbox, slug
from workers.process.connectivity import check_kafka, check_redis

if TYPE_CHECKING:
    from tests.integration.classify_support import Setup
    from tests.integration.feedback_support import FeedbackSetup
    from tests.integration.private_kafka import PrivateKafka
    from tests.integration.redis_support import PrivateRedis

DEFAULT_KAFKA_BOOTSTRAP = "127.0.0.1:9092"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
KAFKA_CHECK_TIMEOUT_S = 5.0
REDIS_CHECK_TIMEOUT_S = 2.0
TOPIC_READY_TIMEOUT_S = 20.0

_INTEGRATION_DIR = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything under tests/integration carries the ``integration`` marker."""
    for item in items:
        if _INTEGRATION_DIR in item.path.resolve().parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    """Bootstrap servers of a Kafka that answers (PRODCAT_KAFKA_BOOTSTRAP or 127.0.0.1:9092)."""
    bootstrap = os.environ.get("PRODCAT_KAFKA_BOOTSTRAP") or DEFAULT_KAFKA_BOOTSTRAP
    try:
        check_kafka(bootstrap, timeout_s=KAFKA_CHECK_TIMEOUT_S)
    except ServiceUnavailableError as exc:
        problem = str(exc)
    else:
        return bootstrap
    pytest.fail(problem, pytrace=False)  # outside "except": no chained traceback


@pytest.fixture(scope="session")
def redis_url() -> str:
    """URL of a Redis that answers PING (PRODCAT_REDIS_URL or redis://127.0.0.1:6379/0)."""
    url = os.environ.get("PRODCAT_REDIS_URL") or DEFAULT_REDIS_URL
    try:
        check_redis(
            url, timeout_s=REDIS_CHECK_TIMEOUT_S, password=os.environ.get("PRODCAT_REDIS_PASSWORD")
        )
    except ServiceUnavailableError as exc:
        problem = str(exc)
    else:
        return url
    pytest.fail(problem, pytrace=False)


@pytest.fixture(scope="session")
def kafka_admin(kafka_bootstrap: str) -> AdminClient:
    """A confluent-kafka AdminClient on the test broker."""
    return AdminClient(admin_config(KafkaSettings(bootstrap=kafka_bootstrap), "test"))


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    """A redis-py client (bytes in, bytes out) on the test Redis."""
    client = redis.Redis.from_url(
        redis_url, password=os.environ.get("PRODCAT_REDIS_PASSWORD"), socket_timeout=5.0
    )
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def redis_namespace(redis_client: redis.Redis, request: pytest.FixtureRequest) -> Iterator[str]:
    """A key prefix unique to this test; every key under it is deleted afterwards."""
    namespace = f"prodcat-test:{slug(request.node.name, 40)}:{uuid.uuid4().hex[:10]}"
    yield namespace
    keys = list(redis_client.scan_iter(match=f"{namespace}:*", count=500))
    if keys:
        redis_client.delete(*keys)


@pytest.fixture
def topic_factory(kafka_bootstrap: str, request: pytest.FixtureRequest) -> Iterator[TopicSandbox]:
    """Unique, ready topics for one test (``topic_factory.new(partitions, name=..)``), all
    deleted afterwards: the throwaway-topic sandbox the demo and the benchmarks use too."""
    sandbox = TopicSandbox(
        KafkaSettings(bootstrap=kafka_bootstrap),
        f"test.{slug(request.node.name)}",
        timeout_s=TOPIC_READY_TIMEOUT_S,
    )
    try:
        yield sandbox
    finally:
        sandbox.delete_all(strict=True)


# The classify tests' shared model and catalog slice: one definition for the session.
@pytest.fixture(scope="session")
def classify_bundle(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.integration.classify_support import shared_bundle

    return shared_bundle(data_dir, tmp_path_factory)


@pytest.fixture(scope="session")
def catalog_rows(data_dir: Path) -> list[Example]:
    from tests.integration.classify_support import load_rows

    return load_rows(data_dir)


@pytest.fixture
def setup(
    topic_factory: TopicSandbox, kafka_bootstrap: str, redis_url: str, classify_bundle: Path
) -> Iterator[Setup]:
    """Fresh topics and a Redis key prefix for one classify test; the keys go afterwards."""
    from tests.integration.classify_support import Setup, delete_keys

    s = Setup.create(topic_factory, kafka_bootstrap, redis_url, classify_bundle)
    yield s
    delete_keys(redis_url, s.prefix)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """A redis-server of this test's own on a free port (no persistence), for tests that
    stop, restart or empty Redis; the shared Redis is never touched."""
    from tests.integration.classify_support import free_port
    from tests.integration.redis_support import PrivateRedis

    r = PrivateRedis(free_port(), tmp_path)
    r.start()
    try:
        yield r
    finally:
        r.stop()


@pytest.fixture
def make_setup(
    topic_factory: TopicSandbox,
    kafka_bootstrap: str,
    redis_url: str,
    classify_bundle: Path,
    tmp_path: Path,
) -> Iterator[Callable[..., FeedbackSetup]]:
    """``make_setup(redis_url=..., **feedback_settings)``: topics, a faust app id, a state
    directory and a Redis prefix for one feedback test (keys deleted afterwards)."""
    from tests.integration.classify_support import delete_keys
    from tests.integration.feedback_support import FeedbackSetup

    made: list[FeedbackSetup] = []

    def make(*, redis_url: str = redis_url, **feedback: Any) -> FeedbackSetup:
        s = FeedbackSetup.make(
            topic_factory, kafka_bootstrap, redis_url, classify_bundle, tmp_path / "faust",
            **feedback,
        )  # fmt: skip
        made.append(s)
        return s

    yield make
    for s in made:
        with contextlib.suppress(redis.RedisError):  # a private Redis may be gone by now
            delete_keys(s.redis_url, s.prefix)


@pytest.fixture(scope="session")
def _private_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateKafka]:
    from tests.integration.private_kafka import PrivateKafka

    kafka = PrivateKafka(tmp_path_factory.mktemp("private-kafka"))
    kafka.start()
    try:
        yield kafka
    finally:
        kafka.close()


@pytest.fixture
def private_kafka(_private_kafka: PrivateKafka) -> PrivateKafka:
    """A broker of the session's own (``deploy/local/stack up kafka`` in a temp folder, on
    free ports) for tests that stop it; up when the test starts, whatever the last one did."""
    if _private_kafka.pid() is None:
        _private_kafka.start()
    return _private_kafka
