"""Redis going away and coming back while the worker runs (a private redis-server, never the
shared one)."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from export.data.catalog import Example
from tests.integration.classify_support import (
    Setup,
    categorized,
    free_port,
    produce_events,
    product_events,
    read_all,
    running_worker,
    wait_for,
)
from workers.kafka.sandbox import TopicSandbox

pytestmark = [pytest.mark.integration, pytest.mark.slow]


class PrivateRedis:
    def __init__(self, port: int, workdir: Path) -> None:
        self.port = port
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        server = shutil.which("redis-server")
        if server is None:
            pytest.fail("redis-server is not installed (needed for a private Redis)")
        self.proc = subprocess.Popen(
            [server, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis(port=self.port, socket_timeout=1)

        def up() -> bool:
            try:
                return bool(client.ping())
            except redis.RedisError:
                return False

        wait_for(up, 10, f"private redis-server on port {self.port}", 0.05)
        client.close()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=2)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    r = PrivateRedis(free_port(), tmp_path)
    r.start()
    try:
        yield r
    finally:
        r.stop()


def test_redis_down_keeps_classifying_and_caching_resumes(
    topic_factory: TopicSandbox,
    kafka_bootstrap: str,
    classify_bundle: Path,
    catalog_rows: list[Example],
    private_redis: PrivateRedis,
) -> None:
    s = Setup.create(topic_factory, kafka_bootstrap, private_redis.url, classify_bundle)
    s.extra = {"redis": {"socket_timeout_s": 0.2}}
    created = s.topics["product_created"]
    out_topic = s.topics["categorized"]
    first, second, third = catalog_rows[:300], catalog_rows[300:600], catalog_rows[600:900]
    client = private_redis.client()

    def cached() -> int:
        return sum(1 for _ in client.scan_iter(match=f"{s.prefix}:result:*", count=1000))

    with running_worker(s.settings()) as w:
        metrics = w.worker.metrics
        produce_events(kafka_bootstrap, created, product_events(first, "r1"))
        read_all(kafka_bootstrap, out_topic, expect=300)
        assert cached() > 250

        private_redis.stop()  # Redis goes away mid-run
        produce_events(kafka_bootstrap, created, product_events(second, "r2"))
        out = categorized(read_all(kafka_bootstrap, out_topic, expect=600))
        assert len(out) == 600  # outputs keep coming
        assert metrics.cache_errors.labels("lookup")._value.get() >= 1
        assert not w.worker.cache.available  # type: ignore[union-attr]

        private_redis.start()  # back, empty (it kept no data)
        # Small batches trickle in; the breaker's next probe finds Redis up and caching resumes.
        deadline = time.monotonic() + 30
        sent = 0
        while cached() == 0 and time.monotonic() < deadline:
            chunk = third[sent % 300 : sent % 300 + 30]
            sent += produce_events(kafka_bootstrap, created, product_events(chunk, "r3", sent))
            time.sleep(0.5)
        assert cached() > 0, "caching did not resume after Redis came back"
        assert w.worker.cache.available  # type: ignore[union-attr]

        # And the cache answers again: the same texts twice, the second time from Redis.
        hits = metrics.cache_hits
        produce_events(kafka_bootstrap, created, product_events(third[:100], "r4"))
        read_all(kafka_bootstrap, out_topic, expect=600 + sent + 100)
        before = hits._value.get()
        produce_events(kafka_bootstrap, created, product_events(third[:100], "r5"))
        wait_for(lambda: hits._value.get() - before >= 90, 20, "cache hits after recovery")
    client.close()
