"""workers.classify.cache: cached values, the circuit breaker, a cache without Redis."""

from __future__ import annotations

import json
import time

import msgspec

from workers.classify.cache import CircuitBreaker, ResultCache, decode_cached, encode_cached
from workers.classify.categorized import DecisionEncoder, DecisionJSON
from workers.core.categories import category_id
from workers.core.settings import RedisSettings
from workers.inference.taxonomy import Alternative, Decision


def _decision() -> Decision:
    path = ("Grocery", "Staples", "Atta")
    return Decision(
        category_id=category_id(path),
        path=path,
        confidence=0.91,
        alternatives=(
            Alternative(category_id(path), path, 0.91),
            Alternative(category_id(("Grocery", "Oil")), ("Grocery", "Oil"), 0.05),
        ),
        abstained=False,
        needs_review=False,
        leaf_index=3,
    )


def test_cached_decision_round_trip() -> None:
    d = _decision()
    encoded = DecisionEncoder().encode(d)
    raw = encode_cached(encoded)
    cached = decode_cached(raw)
    assert isinstance(cached, DecisionJSON) and cached == encoded
    assert (cached.category_id, cached.confidence, cached.depth) == (d.category_id, 0.91, 3)
    assert (cached.abstained, cached.needs_review) == (False, False)
    fields = json.loads(b"{" + cached.fields + b"}")
    assert fields["category_path"] == list(d.path)
    assert [a["category_id"] for a in fields["alternatives"]] == [
        a.category_id for a in d.alternatives
    ]
    assert fields["standard_category"] is None and fields["google_product_category"] is None
    # one MessagePack array: no per-alternative objects to decode (the two null standard
    # fields of a bundle without a mapping add 55 bytes)
    assert len(raw) < 400 + 55


def test_unreadable_cached_value_is_a_miss() -> None:
    assert decode_cached(b"\xff\x00garbage") is None
    assert decode_cached(b'{"a": 1}') is None
    # the layout before DecisionJSON (nested arrays) reads as a miss, not as garbage
    old = msgspec.msgpack.encode(["c1", ["A", "B"], 0.9, [["c1", ["A", "B"], 0.9]], False, False])
    assert decode_cached(old) is None


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_breaker_backs_off_exponentially_up_to_max() -> None:
    clock = FakeClock()
    b = CircuitBreaker(initial_s=0.5, max_s=30.0, clock=clock, jitter=0.0)
    assert b.allow()
    waits = [b.failure() for _ in range(10)]
    assert waits[:4] == [0.5, 1.0, 2.0, 4.0]
    assert max(waits) == 30.0
    assert b.open


def test_breaker_skips_until_retry_then_probes_once() -> None:
    clock = FakeClock()
    b = CircuitBreaker(initial_s=1.0, clock=clock, jitter=0.0)
    b.failure()
    assert not b.allow()
    clock.now += 0.99
    assert not b.allow()
    clock.now += 0.02
    assert b.allow()  # the probe
    assert not b.allow()  # only one probe per retry time
    b.success()
    assert not b.open
    assert b.allow()


def test_cache_disabled_or_breaker_open_skips_redis() -> None:
    settings = RedisSettings(url="redis://127.0.0.1:1/0")
    cache = ResultCache(settings, enabled=False)
    assert cache.lookup(["p"], ["h"], "v") is None
    assert not cache.store("v", [("h", b"x")])
    assert not cache.available
    clock = FakeClock()
    breaker = CircuitBreaker(clock=clock, jitter=0.0)
    breaker.failure()
    cache = ResultCache(settings, breaker=breaker)
    assert cache.lookup(["p"], ["h"], "v") is None  # skipped: no connection attempt


def test_cache_counts_errors_when_redis_is_down() -> None:
    errors: list[str] = []
    # port 1 on localhost: connection refused at once
    cache = ResultCache(
        RedisSettings(url="redis://127.0.0.1:1/0", socket_timeout_s=0.2),
        on_error=errors.append,
        breaker=CircuitBreaker(jitter=0.0),
    )
    assert cache.lookup(["p"], ["h"], "v") is None
    assert errors == ["lookup"]
    assert not cache.available
    assert cache.lookup(["p"], ["h"], "v") is None  # breaker open: not even tried
    assert errors == ["lookup"]
    cache.close()


def test_the_probe_reports_redis_down_without_any_batch() -> None:
    errors: list[str] = []
    states: list[bool] = []
    cache = ResultCache(
        RedisSettings(url="redis://127.0.0.1:1/0", socket_timeout_s=0.2),  # refused at once
        on_error=errors.append,
        breaker=CircuitBreaker(jitter=0.0),
    )
    assert cache.available  # nothing has failed yet
    cache.start_probe(states.append, interval_s=0.01)
    deadline = time.monotonic() + 10
    while len(states) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    cache.close()  # stops the probe
    assert states[:3] == [False, False, False]
    assert not cache.available  # the breaker opened: batches skip Redis at once
    assert set(errors) == {"probe"}
    after = len(states)
    time.sleep(0.05)
    assert len(states) == after
