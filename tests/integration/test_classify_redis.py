"""Redis going away and coming back while the worker runs (a private redis-server, never the
shared one)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from export.data.catalog import Example
from tests.integration.classify_support import (
    Setup,
    categorized,
    produce_events,
    product_events,
    read_all,
    running_worker,
    wait_for,
)
from tests.integration.redis_support import PrivateRedis
from workers.kafka.sandbox import TopicSandbox

pytestmark = [pytest.mark.integration, pytest.mark.slow]


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


def test_an_idle_worker_reports_redis_as_it_is(setup: Setup, private_redis: PrivateRedis) -> None:
    """No event at all: ``prodcat_cache_available`` follows Redis answering PING (it read 0
    on every idle worker, so the Redis alert fired for replicas that had nothing to do)."""
    setup.redis_url = private_redis.url
    setup.extra = {"redis": {"socket_timeout_s": 0.2}}

    with running_worker(setup.settings()) as w:
        registry = w.worker.metrics.registry

        def available() -> float | None:
            return registry.get_sample_value("prodcat_cache_available")

        wait_for(lambda: available() == 1.0, 15, "an idle worker to report Redis available")
        private_redis.stop()
        wait_for(lambda: available() == 0.0, 20, "the idle worker to see Redis gone")
        assert w.worker.metrics.cache_errors.labels("probe")._value.get() >= 1
        private_redis.start()
        wait_for(lambda: available() == 1.0, 20, "the idle worker to see Redis back")
        assert not registry.get_sample_value("prodcat_batch_size_count")  # idle throughout
