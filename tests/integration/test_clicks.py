"""``prodcat clicks`` on the real broker: a replayed click stream over real bigbasket and
Chinese products becomes query labels, and bad clicks become dead letters."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest

from export.data.catalog import Example
from export.data.datasets import load_dataset
from export.data.queries import QueryMaker, is_chinese
from tests.integration.classify_support import produce, read_all, wait_for
from workers.clicks.app import ClicksApp
from workers.clicks.tally import normalize_query, query_id
from workers.core.categories import category_id
from workers.core.codec import Codec
from workers.core.events import CategorizedEvent, ClickEvent, LabelEvent
from workers.core.settings import Settings
from workers.kafka.deadletter import DLQ_ERROR_CLASS, DLQ_ERROR_FIELD
from workers.kafka.sandbox import TopicSandbox

CODEC = Codec()
TIMEOUT_S = 90.0
T0 = datetime(2026, 12, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def products(data_dir: Path) -> list[Example]:
    english, _ = load_dataset("bigbasket", data_dir, limit=1500)
    chinese, _ = load_dataset("cn_ecommerce_products", data_dir, limit=1500)
    return english + chinese


def _categorized(e: Example) -> tuple[bytes, bytes, None]:
    event = CategorizedEvent(
        event_type="product.categorized", event_id=uuid.uuid4().hex, product_id=e.product_id,
        category_id=category_id(e.path), category_path=list(e.path), confidence=0.9,
        alternatives=[], abstained=False, needs_review=False, model_version="test-v1",
        source="model", causation_id=uuid.uuid4().hex, input_hash="0" * 32, event_time=T0,
        classified_at=T0,
    )  # fmt: skip
    return e.product_id.encode(), CODEC.encode(event), None


def _click(query: str, product_id: str, n: int, action: Any = "click") -> tuple[bytes, bytes, None]:
    event = ClickEvent(
        event_type="search.click", event_id=f"clk-{uuid.uuid4().hex}", query=query,
        product_id=product_id, action=action, position=1 + n % 10, session_id=f"s{n % 7}",
        occurred_at=T0 + timedelta(seconds=n),
    )  # fmt: skip
    return product_id.encode(), CODEC.encode(event), None


class AppThread:
    def __init__(self, settings: Settings) -> None:
        self.app = ClicksApp(settings, instance="test")
        self.app.start()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="clicks-app", daemon=True)
        self.thread.start()
        wait_for(lambda: self.app.running or not self.thread.is_alive(), TIMEOUT_S, "app start")

    def _run(self) -> None:
        try:
            self.app.run()
        except BaseException as exc:
            self.error = exc

    def stop(self) -> None:
        self.app.request_stop()
        self.thread.join(TIMEOUT_S)
        self.app.stop()
        assert not self.thread.is_alive(), "clicks app thread did not stop"
        if self.error is not None:
            raise self.error


@contextmanager
def running_app(settings: Settings) -> Iterator[AppThread]:
    app = AppThread(settings)
    try:
        yield app
    finally:
        app.stop()


def test_a_replayed_click_stream_becomes_query_labels(
    topic_factory: TopicSandbox, kafka_bootstrap: str, products: list[Example], tmp_path: Path
) -> None:
    topics = {
        "categorized": topic_factory.new(3, name="categorized"),
        "clicks": topic_factory.new(3, name="clicks"),
        "query_labels": topic_factory.new(3, name="query-labels"),
        "dead_letter": topic_factory.new(3, name="dead-letter"),
    }
    app_id = f"clicks-test-{uuid.uuid4().hex[:8]}"
    for internal in ("products-changelog", "queries-changelog", "by-query"):
        topic_factory.adopt(f"{app_id}-{internal}")
    settings = Settings().with_overrides(
        kafka={"bootstrap": kafka_bootstrap, "partitions": 3},
        topics=topics,
        metrics={"port": 0},
        clicks={"app_id": app_id, "state_dir": str(tmp_path / "state"), "min_weight": 3.0,
                "min_share": 0.6},
    )  # fmt: skip
    by_path: dict[tuple[str, ...], list[Example]] = {}
    for e in products:
        by_path.setdefault(e.path, []).append(e)
    full = [p for p, rows in by_path.items() if len(rows) >= 6]
    chinese_paths = [p for p in full if is_chinese(by_path[p][0].title)]
    paths = [p for p in full if p not in chinese_paths][:20] + chinese_paths[:20]
    maker = QueryMaker(products, seed=7)
    clicks: list[tuple[bytes, bytes, None]] = []
    expected: dict[str, tuple[str, ...] | None] = {}
    n = 0
    for i, path in enumerate(paths):
        rows = by_path[path]
        queries = [q for e in rows[:3] for q in maker.queries(e, 2)]
        query = next((q for q in queries if normalize_query(q) not in expected), None)
        if query is None:
            continue
        other = by_path[paths[(i + 1) % len(paths)]][0]
        if i % 5 == 4:  # an undecided query: as many clicks in two categories
            plan = [rows[0], rows[1], other, other]
            expected[normalize_query(query)] = None
        else:  # four shoppers pick this category, one another
            plan = [rows[k % len(rows)] for k in range(4)] + [other]
            expected[normalize_query(query)] = path
        for e in plan:
            clicks.append(_click(query, e.product_id, n))
            n += 1
    assert len(expected) >= 20
    stranger = _click("mystery", "no-such-product", n)
    broken = (b"p", b'{"event_type": "search.click", "query": "x"}', None)

    produce(kafka_bootstrap, topics["categorized"], (_categorized(e) for e in products))
    with running_app(settings):
        produce(kafka_bootstrap, topics["clicks"], [*clicks, stranger, broken])
        decided = {query_id(q) for q, p in expected.items() if p is not None}
        labels: dict[str, LabelEvent] = {}

        def labelled() -> bool:
            """The labels now: the newest record per key (a tombstone withdraws one; an
            undecided query may have had a label while only some of its clicks were in)."""
            labels.clear()
            for m in read_all(kafka_bootstrap, topics["query_labels"], settle_s=0.3):
                key = m.key().decode()
                if m.value() is None:
                    labels.pop(key, None)
                else:
                    labels[key] = CODEC.decode(m.value(), LabelEvent)
            return set(labels) == decided

        wait_for(labelled, TIMEOUT_S, f"exactly the {len(decided)} decided queries' labels")
        dead = read_all(kafka_bootstrap, topics["dead_letter"], expect=2, timeout_s=TIMEOUT_S)

    for query, path in expected.items():
        label = labels.get(query_id(query))
        if path is None:
            assert label is None, f"{query!r} is undecided but got {label}"
        else:
            assert label is not None, f"no label for {query!r}"
            assert tuple(label.category_path) == path
            assert label.title == query and label.source == "user"
    classes = Counter(dict(m.headers())[DLQ_ERROR_CLASS].decode() for m in dead)
    assert classes == {"UnjoinedClickError": 1, "InvalidEventError": 1}
    fields = {dict(m.headers())[DLQ_ERROR_FIELD].decode() for m in dead}
    assert "$.product_id" in fields and "$.event_id" in fields
    chinese = [q for q, p in expected.items() if p and not q.isascii()]
    assert chinese, "the stream has Chinese queries too"
    assert msgspec.json.decode(CODEC.encode(next(iter(labels.values()))))["event_type"] == (
        "category.label"
    )
