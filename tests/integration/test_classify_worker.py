"""The classify worker in-process against the real broker, Redis and a real trained bundle."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import redis

from export.data.catalog import Example
from tests.integration.classify_support import (
    PARTITIONS,
    Record,
    Setup,
    categorized,
    causation_counts,
    committed,
    end_offsets,
    free_port,
    offline_categories,
    produce,
    produce_events,
    product_events,
    read_all,
    running_worker,
    wait_for,
)
from workers.classify.metrics import ClassifyMetrics
from workers.classify.pipeline import BatchPipeline
from workers.core.codec import Codec
from workers.core.overrides import override_key
from workers.core.product import ProductText
from workers.inference.model import Classifier
from workers.kafka.deadletter import (
    DLQ_ERROR_CLASS,
    DLQ_ERROR_FIELD,
    DLQ_SOURCE_OFFSET,
    DLQ_SOURCE_PARTITION,
    DLQ_SOURCE_TOPIC,
    DLQ_WORKER,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


N_ROWS = 2500


def _fully_committed(s: Setup, topic: str) -> bool:
    ends = end_offsets(s.bootstrap, topic)
    done = committed(s.bootstrap, s.group, topic)
    return all(done.get(p, -1) >= end for p, end in ends.items() if end > 0)


# Smallest batch that overlaps its model run with the next batch: every batch, or none.
OVERLAP_MIN = {"overlap": 1, "inline": 10**9}


@pytest.mark.parametrize("mode", sorted(OVERLAP_MIN))
def test_outputs_match_offline_then_replay_hits_cache(
    setup: Setup,
    catalog_rows: list[Example],
    classify_bundle: Path,
    redis_client: redis.Redis,
    mode: str,
) -> None:
    rows = catalog_rows[:N_ROWS]
    expected = offline_categories(classify_bundle, rows)
    events = product_events(rows, f"match-{mode}")
    by_event = {e.event_id: (i, e) for i, e in enumerate(events)}
    s = setup
    settings = s.settings().with_overrides(
        metrics={"port": free_port()}, classify={"overlap_min_batch": OVERLAP_MIN[mode]}
    )
    with running_worker(settings) as w:
        produce_events(s.bootstrap, s.topics["product_created"], events)
        out = categorized(read_all(s.bootstrap, s.topics["categorized"], expect=N_ROWS))
        counts = causation_counts(out)
        assert len(out) == N_ROWS and set(counts) == set(by_event)
        assert max(counts.values()) == 1
        for ev in out:
            i, src = by_event[ev.causation_id]
            assert ev.product_id == src.product_id
            assert ev.category_id == expected[i], (src.title, ev.category_path)
            assert ev.source in ("model", "cache")  # the catalog repeats some products
            assert ev.model_version == w.worker.pipeline.version  # type: ignore[union-attr]
        reviews = categorized(read_all(s.bootstrap, s.topics["review"], settle_s=1.0))
        assert {r.causation_id for r in reviews} == {e.causation_id for e in out if e.needs_review}
        assert all(r.review_reason for r in reviews)
        wait_for(lambda: _fully_committed(s, s.topics["product_created"]), 20, "offsets committed")
        keys = list(redis_client.scan_iter(match=f"{s.prefix}:result:*", count=1000))
        assert len(keys) == len({e.input_hash for e in out})  # one result per distinct text

        port = settings.metrics.port
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as r:
            assert json.loads(r.read())["ready"] is True
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            metrics = r.read().decode()
        assert (
            f'prodcat_consumed_total{{topic="{s.topics["product_created"]}"}} {N_ROWS}.0' in metrics
        )
        assert "prodcat_end_to_end_latency_seconds_count" in metrics

        # Replay: the same events again, now answered from the cache, with the same answers.
        hits_first = sum(1 for e in out if e.source == "cache")
        assert hits_first < N_ROWS // 4
        assert w.worker.metrics.cache_hits._value.get() == hits_first
        produce_events(s.bootstrap, s.topics["product_created"], events)
        out2 = categorized(read_all(s.bootstrap, s.topics["categorized"], expect=2 * N_ROWS))
        assert len(out2) == 2 * N_ROWS
        assert sum(1 for e in out2 if e.source == "cache") == hits_first + N_ROWS
        first = {e.causation_id: e for e in out}
        for ev in out2:
            assert ev.category_id == first[ev.causation_id].category_id
            assert ev.event_id == first[ev.causation_id].event_id  # deterministic ids
        assert w.worker.metrics.cache_hits._value.get() == hits_first + N_ROWS
        batches = {m: w.worker.metrics.batches.labels(m)._value.get() for m in OVERLAP_MIN}
        assert batches[mode] > 0 and sum(batches.values()) == batches[mode], batches


def _poison() -> list[tuple[str, bytes | None, bytes]]:
    good = {
        "event_type": "product.created",
        "event_id": "bad-0",
        "product_id": "BAD",
        "title": "Tomato Ketchup 500 g",
        "occurred_at": "2024-06-14T03:05:11Z",
    }
    no_title = {k: v for k, v in good.items() if k != "title"}
    wrong_type = {**good, "price": "free"}
    blank_title = {**good, "title": "   "}
    return [
        ("InvalidEventError", b"bad-json", b'{"event_type": "product.created", "title": '),
        ("InvalidEventError", b"not-utf8", b'{"title": "\xff\xfe"}'),
        (
            "PayloadTooLargeError",
            b"huge",
            json.dumps({**good, "description": "x" * 70000}).encode(),
        ),
        ("InvalidEventError", b"no-title", json.dumps(no_title).encode()),
        ("InvalidEventError", b"schema", json.dumps(wrong_type).encode()),
        ("InvalidEventError", b"blank", json.dumps(blank_title).encode()),
        ("InvalidEventError", None, b""),
    ]


def test_poison_messages_are_dead_lettered(setup: Setup, catalog_rows: list[Example]) -> None:
    s = setup
    codec = Codec()
    valid = product_events(catalog_rows[:300], "poison")
    poison = _poison()
    records: list[Record] = []
    bad: set[tuple[bytes | None, bytes]] = set()
    for i, e in enumerate(valid):
        records.append((e.product_id.encode(), codec.encode(e), None))
        if i % 40 == 0:
            _, key, value = poison[(i // 40) % len(poison)]
            records.append((key, value, [("origin", b"test")]))
            bad.add((key, value))
    n_bad = len(records) - len(valid)
    with running_worker(s.settings()):
        produce(s.bootstrap, s.topics["product_created"], records)
        out = categorized(read_all(s.bootstrap, s.topics["categorized"], expect=len(valid)))
        dlq = read_all(s.bootstrap, s.topics["dead_letter"], expect=n_bad)
        wait_for(lambda: _fully_committed(s, s.topics["product_created"]), 20, "offsets committed")
    assert causation_counts(out) == {e.event_id: 1 for e in valid}
    assert len(dlq) == n_bad
    expected_class = {key: cls for cls, key, _ in poison}
    for m in dlq:
        h = {name: value.decode() for name, value in m.headers()}
        assert (m.key(), m.value() or b"") in bad  # key and value unchanged
        assert h["origin"] == "test"  # original headers kept
        assert h[DLQ_ERROR_CLASS] == expected_class[m.key()]
        assert h[DLQ_ERROR_FIELD].startswith("$")
        assert h[DLQ_SOURCE_TOPIC] == s.topics["product_created"]
        assert 0 <= int(h[DLQ_SOURCE_PARTITION]) < PARTITIONS
        assert int(h[DLQ_SOURCE_OFFSET]) >= 0
        assert h[DLQ_WORKER] == "classify@t"
    no_title = next(m for m in dlq if m.key() == b"no-title")
    assert dict(no_title.headers())[DLQ_ERROR_FIELD] == b"$.title"


def test_override_wins(
    setup: Setup, catalog_rows: list[Example], redis_client: redis.Redis
) -> None:
    s = setup
    events = product_events(catalog_rows[:20], "override")
    target = events[3]
    redis_client.set(
        override_key(s.prefix, target.product_id),
        json.dumps({"category_path": ["Moderated", "Choice"], "source": "moderator"}),
    )
    try:
        with running_worker(s.settings()):
            produce_events(s.bootstrap, s.topics["product_created"], events)
            out = categorized(read_all(s.bootstrap, s.topics["categorized"], expect=len(events)))
    finally:
        redis_client.delete(override_key(s.prefix, target.product_id))
    by_id = {e.causation_id: e for e in out}
    got = by_id[target.event_id]
    assert (got.source, got.category_path, got.confidence) == (
        "override",
        ["Moderated", "Choice"],
        1.0,
    )
    assert all(e.source == "model" for k, e in by_id.items() if k != target.event_id)


class _Flaky:
    """A classifier that raises on one title (a poison item for the model)."""

    def __init__(self, inner: Classifier, bad_title: str) -> None:
        self.inner = inner
        self.bad_title = bad_title
        self.version = inner.version
        self.standard = inner.standard
        self.featurizer = inner.featurizer
        self.calls = 0

    @property
    def last_timings(self) -> Any:
        return self.inner.last_timings

    def decide_prepared(self, items: list[Any]) -> Any:
        """The worker hands prepared (normalized) texts to the model."""
        self.calls += 1
        bad = self.featurizer.prepare(ProductText(title=self.bad_title)).title
        if any(i.title == bad for i in items):
            raise FloatingPointError("model blew up")
        return self.inner.decide_prepared(items)


def test_model_failure_is_bisected_to_the_poison_item(
    catalog_rows: list[Example], classify_bundle: Path
) -> None:
    rows = catalog_rows[:64]
    events = product_events(rows, "bisect")
    codec = Codec()
    flaky = _Flaky(Classifier.from_path(classify_bundle), rows[37].title)
    pipeline = BatchPipeline(flaky, codec, ClassifyMetrics())  # type: ignore[arg-type]
    outcomes = pipeline.run([codec.encode(e) for e in events])
    bad = [i for i, o in enumerate(outcomes) if o.error is not None]
    assert bad == [i for i, r in enumerate(rows) if r.title == rows[37].title]
    assert all(isinstance(outcomes[i].error, FloatingPointError) for i in bad)
    assert all(o.value is not None for i, o in enumerate(outcomes) if i not in bad)
    assert flaky.calls <= 2 * 7 + 1  # log2(64) levels, two halves each
