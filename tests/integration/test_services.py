"""The local services really work with the clients prodcat uses.

Kafka: confluent-kafka (classify worker) and faust-streaming/aiokafka (feedback
app) exchange messages through the broker in both directions. Redis: a redis-py
round trip. And when a service is down, the connectivity checks say so quickly.
"""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import faust
import pytest
import redis
from confluent_kafka import Consumer, Producer

from workers.core.errors import ServiceUnavailableError
from workers.kafka.sandbox import TopicSandbox
from workers.process.connectivity import check_kafka, check_redis

pytestmark = pytest.mark.integration

MESSAGES = 12
FAUST_TIMEOUT_S = 60.0


def _faust_app(bootstrap: str, app_id: str, datadir: Path) -> faust.App:
    return faust.App(
        app_id,
        broker=f"kafka://{bootstrap}",
        store="memory://",
        web_enabled=False,
        datadir=str(datadir),  # not "<app_id>-data" in the current directory
        consumer_auto_offset_reset="earliest",
        # No "<app_id>-__assignor-__leader" topic: nothing is left behind in the broker.
        topic_disable_leader=True,
    )


def _consume(bootstrap: str, topic: str, count: int, timeout_s: float) -> list[tuple[bytes, bytes]]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"prodcat-test-{uuid.uuid4().hex[:12]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    received: list[tuple[bytes, bytes]] = []
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + timeout_s
        while len(received) < count and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            assert message.error() is None, message.error()
            received.append((message.key(), message.value()))
    finally:
        consumer.close()
    return received


def test_confluent_producer_to_faust_agent(
    kafka_bootstrap: str, topic_factory: TopicSandbox, tmp_path: Path
) -> None:
    topic_name = topic_factory.new(3)
    sent = {f"key-{i}".encode(): f"value-{i}-{uuid.uuid4().hex}".encode() for i in range(MESSAGES)}

    producer = Producer({"bootstrap.servers": kafka_bootstrap, "acks": "all"})
    for key, value in sent.items():
        producer.produce(topic_name, key=key, value=value)
    assert producer.flush(10.0) == 0, "confluent-kafka could not deliver every message"

    async def scenario() -> dict[bytes, bytes]:
        app = _faust_app(kafka_bootstrap, f"prodcat-test-{uuid.uuid4().hex[:12]}", tmp_path)
        topic = app.topic(topic_name, key_serializer="raw", value_serializer="raw")
        received: dict[bytes, bytes] = {}
        done = asyncio.Event()

        @app.agent(topic)
        async def collect(stream: Any) -> None:
            async for event in stream.events():
                received[event.key] = event.value
                if len(received) >= len(sent):
                    done.set()

        await asyncio.wait_for(app.start(), FAUST_TIMEOUT_S)
        try:
            await asyncio.wait_for(done.wait(), FAUST_TIMEOUT_S)
        finally:
            await asyncio.wait_for(app.stop(), FAUST_TIMEOUT_S)
        return received

    assert asyncio.run(scenario()) == sent


def test_faust_send_to_confluent_consumer(
    kafka_bootstrap: str, topic_factory: TopicSandbox, tmp_path: Path
) -> None:
    topic_name = topic_factory.new(3)
    sent = {f"key-{i}".encode(): f"value-{i}-{uuid.uuid4().hex}".encode() for i in range(MESSAGES)}

    async def scenario() -> None:
        app = _faust_app(kafka_bootstrap, f"prodcat-test-{uuid.uuid4().hex[:12]}", tmp_path)
        topic = app.topic(topic_name, key_serializer="raw", value_serializer="raw")
        await asyncio.wait_for(app.start(), FAUST_TIMEOUT_S)
        try:
            pending = [await topic.send(key=key, value=value) for key, value in sent.items()]
            metadata = await asyncio.wait_for(asyncio.gather(*pending), FAUST_TIMEOUT_S)
            assert all(m.offset >= 0 for m in metadata)
        finally:
            await asyncio.wait_for(app.stop(), FAUST_TIMEOUT_S)

    asyncio.run(scenario())
    received = _consume(kafka_bootstrap, topic_name, len(sent), timeout_s=30.0)
    assert dict(received) == sent
    assert len(received) == len(sent), "a message was delivered twice"


def test_redis_round_trip(redis_client: redis.Redis, redis_namespace: str) -> None:
    key = f"{redis_namespace}:greeting"
    assert redis_client.set(key, "héllo".encode(), ex=60)
    assert redis_client.get(key) == "héllo".encode()
    assert 0 < redis_client.ttl(key) <= 60

    counter, table = f"{redis_namespace}:counter", f"{redis_namespace}:overrides"
    pipe = redis_client.pipeline(transaction=True)
    pipe.incr(counter)
    pipe.incrby(counter, 41)
    pipe.hset(table, mapping={"sku-1": "electronics", "sku-2": "books"})
    pipe.expire(table, 60)
    pipe.hgetall(table)
    results = pipe.execute()
    assert results[:4] == [1, 42, 2, True]
    assert results[4] == {b"sku-1": b"electronics", b"sku-2": b"books"}
    assert redis_client.delete(key, counter, table) == 3
    assert redis_client.get(key) is None


# --- when a service is down ------------------------------------------------------------


def _free_port() -> int:
    """A port on 127.0.0.1 with nothing listening on it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts TCP connections (kernel backlog) but never says a word."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield sock.getsockname()[1]


@pytest.mark.parametrize("kind", ["closed", "silent"])
def test_check_kafka_fails_fast_with_a_helpful_message(
    kind: str, request: pytest.FixtureRequest
) -> None:
    port = _free_port() if kind == "closed" else request.getfixturevalue("silent_port")
    bootstrap = f"127.0.0.1:{port}"
    timeout_s = 1.5
    started = time.monotonic()
    with pytest.raises(ServiceUnavailableError) as caught:
        check_kafka(bootstrap, timeout_s=timeout_s)
    elapsed = time.monotonic() - started
    assert elapsed < timeout_s + 2.0, f"check_kafka took {elapsed:.1f} s"
    message = str(caught.value)
    assert f"Kafka is not reachable at {bootstrap}" in message
    if kind == "closed":
        assert "refused the connection" in message
        assert elapsed < 0.5 * timeout_s, "a refused connection should fail at once"
    else:
        assert "after 1.5 s" in message
    assert "deploy/local/stack up" in message
    assert "PRODCAT_KAFKA_BOOTSTRAP" in message


@pytest.mark.parametrize("kind", ["closed", "silent"])
def test_check_redis_fails_fast_with_a_helpful_message(
    kind: str, request: pytest.FixtureRequest
) -> None:
    port = _free_port() if kind == "closed" else request.getfixturevalue("silent_port")
    url = f"redis://:s3cret@127.0.0.1:{port}/0"
    timeout_s = 1.0
    started = time.monotonic()
    with pytest.raises(ServiceUnavailableError) as caught:
        check_redis(url, timeout_s=timeout_s)
    elapsed = time.monotonic() - started
    assert elapsed < timeout_s + 2.0, f"check_redis took {elapsed:.1f} s"
    message = str(caught.value)
    assert f"Redis is not reachable at redis://:***@127.0.0.1:{port}/0" in message
    assert "s3cret" not in message
    assert "deploy/local/stack up" in message
    assert "PRODCAT_REDIS_URL" in message
