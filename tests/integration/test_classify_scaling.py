"""Scaling the classify group: 2 and 3 real worker processes, and one leaving, on inputs
of six partitions each. Every input topic's partitions are spread evenly (±1) and a
product's ``product.created`` and ``product.updated`` partitions belong to one worker;
the rebalances in between lose and repeat nothing.

Before (``cooperative-sticky``): with two workers all six ``product.created`` partitions
went to one of them; with three, [0,1] / [2-5] / [].
"""

from __future__ import annotations

import signal
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import pytest
from confluent_kafka import ConsumerGroupState
from confluent_kafka.admin import AdminClient

from export.data.catalog import Example
from tests.integration.classify_support import (
    Setup,
    WorkerProcess,
    categorized,
    causation_counts,
    committed,
    end_offsets,
    produce_events,
    read_all,
    wait_for,
)
from workers.core.events import ProductEvent, product_event
from workers.kafka.sandbox import TopicSandbox

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PARTITIONS = 6
ROWS = 1000  # per phase: each row as product.created and as product.updated


# member -> topic -> partitions
Assignment = dict[str, dict[str, set[int]]]


def _assignment(admin: AdminClient, group: str) -> Assignment | None:
    """The group's assignment, once it is stable with every partition given out."""
    description = admin.describe_consumer_groups([group])[group].result(timeout=10)
    if description.state != ConsumerGroupState.STABLE:
        return None
    out: Assignment = {}
    for member in description.members:
        topics: dict[str, set[int]] = defaultdict(set)
        for tp in member.assignment.topic_partitions:
            topics[tp.topic].add(tp.partition)
        out[member.client_id] = dict(topics)
    return out


def _stable(admin: AdminClient, s: Setup, members: int) -> Assignment:
    inputs = (s.topics["product_created"], s.topics["product_updated"])
    seen: list[Assignment | None] = [None]

    def ready() -> bool:
        found = seen[0] = _assignment(admin, s.group)
        if found is None or len(found) != members:
            return False
        owned = [p for topics in found.values() for t in inputs for p in topics.get(t, ())]
        return len(owned) == 2 * PARTITIONS

    wait_for(ready, 120, f"a stable group of {members} with every partition assigned")
    found = seen[0]
    assert found is not None
    return found


def _check_spread(found: Assignment, s: Setup) -> None:
    """Even per topic (sizes differ by at most one), co-partitioned per member."""
    created, updated = s.topics["product_created"], s.topics["product_updated"]
    shown = (
        f"{member}: created {sorted(topics.get(created, ()))} updated "
        f"{sorted(topics.get(updated, ()))}"
        for member, topics in sorted(found.items())
    )
    print(f"{len(found)} workers: " + "; ".join(shown))  # the figures of README's Scaling
    for topic in (created, updated):
        sizes = [len(topics.get(topic, set())) for topics in found.values()]
        assert max(sizes) - min(sizes) <= 1, (topic, found)
        assert sum(sizes) == PARTITIONS, (topic, found)
    for member, topics in found.items():
        assert topics.get(created, set()) == topics.get(updated, set()), (member, found)


def _feed(s: Setup, rows: list[Example], tag: str) -> list[ProductEvent]:
    """Each row as a product.created and a product.updated event of the same product."""
    now = datetime.now(UTC)
    created = [
        product_event(e, product_id=e.product_id, event_id=f"{tag}-c-{i}", occurred_at=now)
        for i, e in enumerate(rows)
    ]
    updated = [
        product_event(
            e,
            product_id=e.product_id,
            event_id=f"{tag}-u-{i}",
            occurred_at=now,
            event_type="product.updated",
        )
        for i, e in enumerate(rows)
    ]
    produce_events(s.bootstrap, s.topics["product_created"], created)
    produce_events(s.bootstrap, s.topics["product_updated"], updated)
    return created + updated


def _all_committed(s: Setup) -> bool:
    for key in ("product_created", "product_updated"):
        topic = s.topics[key]
        ends = end_offsets(s.bootstrap, topic, PARTITIONS)
        done = committed(s.bootstrap, s.group, topic, PARTITIONS)
        if any(done.get(p, -1) < end for p, end in ends.items()):
            return False
    return True


@pytest.fixture
def scaling_setup(
    topic_factory: TopicSandbox, kafka_bootstrap: str, redis_url: str, classify_bundle: Path
) -> Setup:
    names = {
        key: topic_factory.new(PARTITIONS, name=key)
        for key in ("product_created", "product_updated", "categorized", "review", "dead_letter")
    }
    names["models"] = topic_factory.new(1, name="models")
    s = Setup(kafka_bootstrap, redis_url, classify_bundle, names)
    s.extra["kafka"] = {"partitions": PARTITIONS}
    return s


def test_partitions_spread_evenly_per_topic_and_co_partitioned(
    scaling_setup: Setup,
    kafka_admin: AdminClient,
    catalog_rows: list[Example],
    tmp_path: Path,
) -> None:
    s = scaling_setup
    workers: dict[str, WorkerProcess] = {}

    def start(name: str) -> None:
        workers[name] = WorkerProcess(s, tmp_path / f"{name}.log", "--instance", name)

    sent: list[ProductEvent] = []
    try:
        start("a")
        start("b")
        _check_spread(_stable(kafka_admin, s, 2), s)
        sent += _feed(s, catalog_rows[:ROWS], "two")

        start("c")  # joins while the first events are still being classified
        _check_spread(_stable(kafka_admin, s, 3), s)
        sent += _feed(s, catalog_rows[ROWS : 2 * ROWS], "three")
        wait_for(lambda: _all_committed(s), 120, "three workers to finish their share")

        workers["c"].signal(signal.SIGTERM)  # one leaves: it drains and commits
        assert workers["c"].wait(60) == 0, workers["c"].logs()
        _check_spread(_stable(kafka_admin, s, 2), s)
        sent += _feed(s, catalog_rows[2 * ROWS : 3 * ROWS], "left")
        wait_for(lambda: _all_committed(s), 120, "the two left to finish")

        for name in ("a", "b"):
            workers[name].signal(signal.SIGTERM)
            assert workers[name].wait(60) == 0, workers[name].logs()
    finally:
        for w in workers.values():
            w.kill()

    out = categorized(read_all(s.bootstrap, s.topics["categorized"], expect=len(sent)))
    counts = causation_counts(out)
    assert set(counts) == {e.event_id for e in sent}
    assert max(counts.values()) == 1  # graceful joins and leaves repeat nothing
    for name in ("a", "b", "c"):
        assert "revoked" in workers[name].logs()  # each took part in a rebalance
