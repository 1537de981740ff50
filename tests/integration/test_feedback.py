"""The feedback app against the real broker and Redis (and, end to end, a classify worker).

Each test has its own topics, consumer groups, faust app id (so its own changelog topics,
deleted afterwards), state directory and Redis key prefix (``make_setup`` in conftest.py).
Waits poll with generous timeouts; nothing asserts wall-clock times.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from export.data.catalog import Example
from tests.integration.classify_support import (
    CODEC,
    REPO,
    categorized,
    free_port,
    produce,
    read_all,
    running_worker,
    wait_for,
)
from tests.integration.feedback_support import (
    LABELS,
    TIMEOUT_S,
    dump_labels_cli,
    feedback,
    leaves,
    prediction,
    product_event,
    read_override,
    running_app,
    send,
    send_all_handled,
    train_cli,
)
from workers.core.categories import format_path
from workers.core.events import CategorizedEvent
from workers.core.product import ProductText
from workers.feedback.drift import min_predictions
from workers.inference.bundle import load_bundle
from workers.inference.model import Classifier
from workers.kafka.deadletter import (
    DLQ_ERROR_CLASS,
    DLQ_ERROR_FIELD,
    DLQ_SOURCE_OFFSET,
    DLQ_SOURCE_PARTITION,
    DLQ_SOURCE_TOPIC,
)
from workers.lifecycle.gate import judge_corrections, read_recent_labels, top_answers

pytestmark = [pytest.mark.integration]

GRACE_S = 2.0  # PRODCAT_FEEDBACK_UNKNOWN_GRACE_S in the tests that let parked feedback expire


# --------------------------------------------------------------------------- tests


@pytest.mark.slow
def test_moderator_correction_reaches_the_classify_worker(
    make_setup: Any, catalog_rows: list[Example], classify_bundle: Path, redis_client: redis.Redis
) -> None:
    s = make_setup()
    settings = s.settings()
    rows = catalog_rows[:30]
    created = [product_event(r, f"create-{i}") for i, r in enumerate(rows)]
    with running_worker(settings), running_app(settings) as fb:
        send(s.bootstrap, s.topics["product_created"], created)
        first = categorized(read_all(s.bootstrap, s.topics["categorized"], expect=len(rows)))
        assert len(first) == len(rows)
        wait_for(
            lambda: (
                fb.metric("prodcat_feedback_consumed_total", topic=s.topics["categorized"])
                >= len(rows)
            ),
            TIMEOUT_S,
            "the feedback app to see every prediction",
        )
        target = rows[0]
        shown = next(e for e in first if e.product_id == target.product_id)
        right = next(p for p in leaves(classify_bundle) if p != tuple(shown.category_path))
        correction = feedback(target.product_id, "moderator", right, actor="mod-7")
        send(s.bootstrap, s.topics["feedback"], [correction])

        wait_for(
            lambda: read_override(redis_client, s.prefix, target.product_id) == right,
            TIMEOUT_S,
            "the override in Redis",
        )

        def corrected_events() -> list[CategorizedEvent]:
            out = categorized(read_all(s.bootstrap, s.topics["categorized"], settle_s=0.5))
            return [e for e in out if e.causation_id == correction.event_id]

        wait_for(lambda: bool(corrected_events()), TIMEOUT_S, "the corrected categorized event")
        (fixed,) = corrected_events()
        assert fixed.source == "override"
        assert tuple(fixed.category_path) == right
        assert fixed.model_version == shown.model_version
        assert fixed.input_hash == shown.input_hash

        # The classify worker now answers this product with the override.
        update = product_event(target, "update-0", "product.updated")
        send(s.bootstrap, s.topics["product_updated"], [update])

        def answer() -> CategorizedEvent | None:
            out = categorized(read_all(s.bootstrap, s.topics["categorized"], settle_s=0.5))
            return next((e for e in out if e.causation_id == update.event_id), None)

        wait_for(lambda: answer() is not None, TIMEOUT_S, "the classify worker's answer")
        after = answer()
        assert after is not None
        assert after.source == "override"
        assert tuple(after.category_path) == right

        assert fb.metric("prodcat_feedback_overrides_total", source="moderator") == 1
        assert fb.metric("prodcat_feedback_override_latency_seconds_count") == 1

    labels = [LABELS.decode(m.value()) for m in read_all(s.bootstrap, s.topics["labels"], expect=1)]
    assert [(lb.product_id, lb.title, tuple(lb.category_path)) for lb in labels] == [
        (target.product_id, target.title, right)
    ]
    assert labels[0].feedback_event_id == correction.event_id
    assert labels[0].source == "moderator"


def test_invalid_feedback_is_dead_lettered_and_the_app_carries_on(
    make_setup: Any, catalog_rows: list[Example], classify_bundle: Path, redis_client: redis.Redis
) -> None:
    s = make_setup(unknown_grace_s=GRACE_S)
    taxonomy = leaves(classify_bundle)
    row = catalog_rows[1]
    now = datetime.now(UTC)
    with running_app(s.settings()) as fb:
        send(s.bootstrap, s.topics["product_created"], [product_event(row, "c-1")])
        send(
            s.bootstrap,
            s.topics["categorized"],
            [prediction(row.product_id, taxonomy[0], "v1", now)],
        )
        wait_for(
            lambda: (
                fb.metric("prodcat_feedback_consumed_total", topic=s.topics["categorized"]) >= 1
                and fb.metric("prodcat_feedback_consumed_total", topic=s.topics["product_created"])
                >= 1
            ),
            TIMEOUT_S,
            "the product and its prediction to be seen",
        )
        pid = row.product_id.encode()
        unknown_category = feedback(row.product_id, "user", ("No Such", "Category"), actor="u-9")
        unknown_product = feedback("never-seen-product", "moderator", taxonomy[1])
        missing_path = CODEC.encode(feedback(row.product_id, "moderator", None, action="reject"))
        missing_path = missing_path.replace(b'"action":"reject"', b'"action":"correct"')
        bad = [
            (pid, b'{"event_type": "category.feedback", "event_id": ', None),
            (pid, CODEC.encode(unknown_category), [("trace", b"t-1")]),
            (b"never-seen-product", CODEC.encode(unknown_product), None),
            (pid, missing_path, None),
        ]
        produce(s.bootstrap, s.topics["feedback"], bad)
        good = feedback(row.product_id, "moderator", taxonomy[1])
        send(s.bootstrap, s.topics["feedback"], [good])
        wait_for(
            lambda: read_override(redis_client, s.prefix, row.product_id) == taxonomy[1],
            TIMEOUT_S,
            "the valid correction after the bad ones",
        )
        # The unknown product's feedback is parked, not dead-lettered at once ...
        wait_for(lambda: fb.metric("prodcat_feedback_parked") == 1, TIMEOUT_S, "it is parked")
        assert fb.metric("prodcat_feedback_parked_expired_total") == 0
        # ... until the grace period has passed and an event of its partition is processed
        # (an unreadable product event with the same key: same partition, product unknown).
        time.sleep(GRACE_S + 0.5)
        produce(s.bootstrap, s.topics["product_updated"], [(b"never-seen-product", b"{", None)])
        wait_for(
            lambda: fb.metric("prodcat_feedback_parked_expired_total") == 1,
            TIMEOUT_S,
            "the parked feedback to expire",
        )
        assert fb.metric("prodcat_feedback_parked") == 0
        assert fb.app.product_state("never-seen-product") is None
    letters = read_all(s.bootstrap, s.topics["dead_letter"], expect=4)
    assert len(letters) == 4
    sent = {m.value(): m for m in read_all(s.bootstrap, s.topics["feedback"], expect=5)}
    seen = {}
    for m in letters:
        headers = dict(m.headers())
        assert headers[DLQ_SOURCE_TOPIC].decode() == s.topics["feedback"]
        original = sent[m.value()]
        assert int(headers[DLQ_SOURCE_PARTITION]) == original.partition()
        assert int(headers[DLQ_SOURCE_OFFSET]) == original.offset()
        assert m.key() == original.key()
        seen[m.value()] = (headers[DLQ_ERROR_CLASS].decode(), headers[DLQ_ERROR_FIELD].decode())
    assert seen == {
        bad[0][1]: ("InvalidEventError", "$"),
        bad[1][1]: ("UnknownCategoryError", "$.category_path"),
        bad[2][1]: ("UnknownProductError", "$.product_id"),
        bad[3][1]: ("InvalidEventError", "$.category_path"),
    }
    kept = next(m for m in letters if m.value() == bad[1][1])
    assert ("trace", b"t-1") in kept.headers(), "the original headers are kept"


@pytest.mark.slow
def test_feedback_read_before_its_product_is_parked_and_applied_when_it_arrives(
    make_setup: Any, catalog_rows: list[Example], classify_bundle: Path, redis_client: redis.Redis
) -> None:
    s = make_setup()
    settings = s.settings()
    taxonomy = leaves(classify_bundle)
    row = catalog_rows[2]
    right = taxonomy[3]
    correction = feedback(row.product_id, "moderator", right, actor="mod-7")
    with running_app(settings) as fb:
        send(s.bootstrap, s.topics["feedback"], [correction])
        wait_for(lambda: fb.metric("prodcat_feedback_parked") == 1, TIMEOUT_S, "it is parked")
        state = fb.app.product_state(row.product_id)
        assert state is not None and not state.known() and len(state.pending) == 1
    assert read_override(redis_client, s.prefix, row.product_id) is None

    # A restart keeps it: the parked feedback is in the table's changelog, and the gauge
    # says so as soon as the table is recovered, before any event of its partition arrives.
    with running_app(settings) as fb:
        wait_for(lambda: fb.metric("prodcat_feedback_parked") == 1, TIMEOUT_S, "the restored gauge")
        send(s.bootstrap, s.topics["product_created"], [product_event(row, "c-late")])
        wait_for(
            lambda: read_override(redis_client, s.prefix, row.product_id) == right,
            TIMEOUT_S,
            "the parked correction applied once the product arrived",
        )
        send(
            s.bootstrap,
            s.topics["categorized"],
            [prediction(row.product_id, taxonomy[0], "v1", datetime.now(UTC))],
        )
        wait_for(
            lambda: (
                fb.metric("prodcat_feedback_consumed_total", topic=s.topics["categorized"]) >= 1
            ),
            TIMEOUT_S,
            "the prediction to be seen",
        )
        state = fb.app.product_state(row.product_id)
        assert state is not None and state.pending == ()
        assert state.override is not None and state.override.category_path == right
        assert [v.event_id for v in state.votes] == [correction.event_id]
        assert fb.metric("prodcat_feedback_parked") == 0
        assert fb.metric("prodcat_feedback_parked_expired_total") == 0
        assert (
            fb.metric(
                "prodcat_feedback_events_total",
                source="moderator",
                action="correct",
                outcome="override",
            )
            == 1
        )

    fixed = [
        e
        for e in categorized(read_all(s.bootstrap, s.topics["categorized"], expect=2))
        if e.causation_id == correction.event_id
    ]
    assert [(e.source, tuple(e.category_path)) for e in fixed] == [("override", right)]
    labels = [LABELS.decode(m.value()) for m in read_all(s.bootstrap, s.topics["labels"], expect=1)]
    assert [(lb.product_id, lb.title, tuple(lb.category_path)) for lb in labels] == [
        (row.product_id, row.title, right)
    ]
    assert read_all(s.bootstrap, s.topics["dead_letter"], settle_s=0.5) == []


def _metrics(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _value(metrics: dict[Any, float], name: str, **labels: str) -> float | None:
    return metrics.get((name, tuple(sorted(labels.items()))))


def test_restart_restores_votes_and_counts_from_the_changelog(
    make_setup: Any, catalog_rows: list[Example], classify_bundle: Path, redis_client: redis.Redis,
    tmp_path: Path,
) -> None:  # fmt: skip
    s = make_setup(user_threshold=3)
    taxonomy = leaves(classify_bundle)
    row = catalog_rows[2]
    shown, right = taxonomy[0], taxonomy[1]
    port = free_port()
    s.extra["metrics"] = {"port": port}
    log_path = tmp_path / "feedback.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "workers.cli", "feedback", "--instance", "first"],
            cwd=REPO, env=s.env(), stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            send(s.bootstrap, s.topics["product_created"], [product_event(row, "c-1")])
            send(
                s.bootstrap,
                s.topics["categorized"],
                [prediction(row.product_id, shown, "v1", datetime.now(UTC))],
            )
            wait_for(lambda: _port_open(port), TIMEOUT_S, "the first app's metrics server")

            def consumed(topic: str) -> float:
                return _value(_metrics(port), "prodcat_feedback_consumed_total", topic=topic) or 0

            wait_for(
                lambda: (
                    consumed(s.topics["categorized"]) >= 1
                    and consumed(s.topics["product_created"]) >= 1
                ),
                TIMEOUT_S,
                "the first app to see the product",
            )
            votes = [
                feedback(row.product_id, "user", right, actor=f"shopper-{i}") for i in range(2)
            ]
            votes.append(feedback(row.product_id, "user", shown, action="accept", actor="s-9"))
            send(s.bootstrap, s.topics["feedback"], votes)

            def handled() -> float:
                m = _metrics(port)
                return sum(
                    v for (name, _), v in m.items() if name == "prodcat_feedback_events_total"
                )

            wait_for(lambda: handled() >= 3, TIMEOUT_S, "the first app to handle the votes")
            before = _metrics(port)
            assert _value(before, "prodcat_feedback_category_predictions",
                          model_version="v1", category=" > ".join(shown)) == 1  # fmt: skip
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(TIMEOUT_S) == 0, log_path.read_text()[-3000:]
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(30)
    assert read_override(redis_client, s.prefix, row.product_id) is None, "2 of 3 votes only"

    # A second instance with an empty state directory: the state comes from the changelog.
    s.extra["feedback"]["state_dir"] = str(tmp_path / "second")
    s.extra["metrics"] = {"port": 0}
    with running_app(s.settings()) as fb:
        wait_for(
            lambda: (st := fb.app.product_state(row.product_id)) is not None and len(st.votes) == 3,
            TIMEOUT_S,
            "the product state to be recovered",
        )
        third = feedback(row.product_id, "user", right, actor="shopper-3")
        accept = feedback(row.product_id, "user", shown, action="accept", actor="s-10")
        send(s.bootstrap, s.topics["feedback"], [accept, third])
        wait_for(
            lambda: read_override(redis_client, s.prefix, row.product_id) == right,
            TIMEOUT_S,
            "the third vote to make the override",
        )
        wait_for(
            lambda: fb.metric("prodcat_feedback_events_total", source="user", action="correct",
                              outcome="override") == 1,
            TIMEOUT_S,
            "the override to be recorded",
        )  # fmt: skip
        snap = fb.app.quality_snapshot()
        assert snap is not None
        counts = snap.quality.categories[("v1", " > ".join(shown))]
        assert (counts.predictions, counts.corrections, counts.accepts) == (1, 1, 2)
        assert fb.metric("prodcat_feedback_overrides_total", source="user") == 1


def _port_open(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
            return True
    except OSError:
        return False


def test_acceptance_rate_matches_a_scripted_sequence(
    make_setup: Any, catalog_rows: list[Example], classify_bundle: Path
) -> None:
    """Window 60 s, buckets of 10 s. Predictions made an hour ago are matured.

    v1: 10 predictions (one repeated: still 10), 3 corrected within the window, 1 corrected
        after it (does not count), 1 user report below the threshold (not a correction)
        -> 1 - 3/10 = 0.7
    v2: 4 predictions, 1 corrected within the window -> 0.75
    v3: 2 predictions made just now (window still open): no rate yet.
    """
    port = free_port()
    s = make_setup(acceptance_window_s=60, acceptance_bucket_s=10, user_threshold=3)
    s.extra["metrics"] = {"port": port}
    taxonomy = leaves(classify_bundle)
    a, b = taxonomy[0], taxonomy[1]
    now = datetime.now(UTC)
    t0 = datetime.fromtimestamp((int(now.timestamp()) // 10) * 10 - 3600, UTC)
    rows = catalog_rows[:16]
    ids = [r.product_id for r in rows]
    preds = [
        prediction(pid, a, "v1", t0 + timedelta(seconds=i % 10)) for i, pid in enumerate(ids[:10])
    ]
    preds.append(prediction(ids[0], a, "v1", t0 + timedelta(seconds=5)))  # the same answer again
    preds += [prediction(pid, a, "v2", t0) for pid in ids[10:14]]
    preds += [prediction(pid, a, "v3", now) for pid in ids[14:16]]
    fixes = [feedback(pid, "moderator", b, at=t0 + timedelta(seconds=30)) for pid in ids[:3]]
    fixes.append(feedback(ids[3], "moderator", b, at=t0 + timedelta(seconds=200)))  # too late
    fixes.append(feedback(ids[4], "user", b, at=t0 + timedelta(seconds=20), actor="u-1"))
    fixes.append(feedback(ids[10], "moderator", b, at=t0 + timedelta(seconds=40)))
    with running_app(s.settings()) as fb:
        send_all_handled(fb, s, "categorized", preds)
        send_all_handled(fb, s, "feedback", fixes)
        m = _metrics(port)
    rate = {
        v: _value(m, "prodcat_feedback_acceptance_rate", model_version=v)
        for v in ("v1", "v2", "v3")
    }
    assert rate["v1"] == pytest.approx(0.7)
    assert rate["v2"] == pytest.approx(0.75)
    assert rate["v3"] is None
    assert _value(m, "prodcat_feedback_matured_predictions", model_version="v1") == 10
    assert _value(m, "prodcat_feedback_matured_corrected", model_version="v1") == 3
    assert _value(m, "prodcat_feedback_pending_predictions", model_version="v3") == 2
    cat = " > ".join(a)
    assert _value(m, "prodcat_feedback_category_corrections", model_version="v1", category=cat) == 3
    assert _value(m, "prodcat_feedback_confusions", predicted=cat, corrected=" > ".join(b)) == 4
    assert _value(m, "prodcat_feedback_table_keys", table="products") == 16
    assert (
        _value(m, "prodcat_feedback_events_total", source="user", action="correct", outcome="vote")
        == 1
    )


def _top_leaves(classifier: Classifier, rows: list[Example]) -> list[tuple[str, ...]]:
    return top_answers(
        classifier, [ProductText(r.title, r.brand, r.description, r.attributes) for r in rows]
    )


def _correct_and_retrain(
    s: Any,
    catalog_rows: list[Example],
    moved: list[Example],
    target: tuple[str, ...],
    tmp_path: Path,
) -> tuple[Classifier, dict[str, float]]:
    """A moderator files every product of ``moved`` under ``target``; the labels topic,
    dumped with ``prodcat labels dump``, is checked and retrains a model on the catalog.
    Returns the new model and the app's override counters."""
    with running_app(s.settings()) as fb:
        send(
            s.bootstrap,
            s.topics["product_created"],
            [product_event(r, f"c-{r.product_id}") for r in moved],
        )
        wait_for(
            lambda: (
                fb.metric("prodcat_feedback_consumed_total", topic=s.topics["product_created"])
                >= len(moved)
            ),
            TIMEOUT_S,
            "the products to be seen",
        )
        send(
            s.bootstrap,
            s.topics["feedback"],
            [feedback(r.product_id, "moderator", target) for r in moved],
        )
        wait_for(
            lambda: fb.metric("prodcat_feedback_labels_total", source="moderator") >= len(moved),
            TIMEOUT_S,
            "a label per correction",
        )
        counters = {
            name: fb.metric(name, source="moderator")
            for name in (
                "prodcat_feedback_overrides_total",
                "prodcat_feedback_new_category_overrides_total",
            )
        }

    labels_file = tmp_path / "labels.jsonl"
    rows = dump_labels_cli(s, labels_file)
    assert sorted((lb.product_id, lb.title, tuple(lb.category_path)) for lb in rows) == sorted(
        (r.product_id, r.title, target) for r in moved
    )
    bundle = train_cli(
        catalog_rows, labels_file, tmp_path / "train",
        "--candidates", "fasttext", "--epochs", "12", "--dim", "32", "--buckets", "16384",
    )  # fmt: skip
    return Classifier.from_path(bundle), counters


def _small_category(
    catalog_rows: list[Example], old: Classifier, avoid: tuple[str, ...] | None = None
) -> tuple[str, ...]:
    """A category of 15-40 rows, outside ``avoid``'s top level, that the old model does not
    answer with ``avoid``."""
    sizes = Counter(r.path for r in catalog_rows)
    return next(
        p
        for p in sorted(sizes, key=lambda p: (sizes[p], p))
        if 15 <= sizes[p] <= 40
        and (avoid is None or p[0] != avoid[0])
        and (
            avoid is None or avoid not in _top_leaves(old, [r for r in catalog_rows if r.path == p])
        )
    )


@pytest.mark.slow
def test_labels_from_corrections_change_the_retrained_model(
    make_setup: Any, catalog_rows: list[Example], classify_bundle: Path, tmp_path: Path
) -> None:
    """A moderator moves every product of one small category to another; the retrained
    model follows the correction."""
    old = Classifier.from_path(classify_bundle)
    known = set(old.bundle.taxonomy.leaves)
    sizes = Counter(r.path for r in catalog_rows)
    target = max((p for p in sizes if p in known), key=lambda p: sizes[p])
    source = _small_category(catalog_rows, old, avoid=target)
    moved = [r for r in catalog_rows if r.path == source]
    new, counters = _correct_and_retrain(make_setup(), catalog_rows, moved, target, tmp_path)
    assert counters["prodcat_feedback_new_category_overrides_total"] == 0
    assert source not in set(new.bundle.taxonomy.leaves), "every row of it was corrected"
    after = _top_leaves(new, moved)
    assert sum(p == target for p in after) >= 0.6 * len(moved), after
    # the offline gate on recent corrections (prodcat models gate --labels) lets the
    # retrained model through and stops a candidate that learnt nothing from them
    recent = read_recent_labels(tmp_path / "labels.jsonl", old.bundle.metadata.created_at)
    assert len(recent.items) == len(moved)
    learnt = judge_corrections(new.bundle, old.bundle, recent)
    print(f"\n{learnt.describe('retrained', 'old')}")
    assert learnt.passed and learnt.live_wrong >= 0.8 * len(moved)
    assert not judge_corrections(old.bundle, old.bundle, recent).passed


@pytest.mark.slow
def test_a_category_moderators_introduce_is_learnt_by_the_next_model(
    make_setup: Any, catalog_rows: list[Example], classify_bundle: Path, tmp_path: Path
) -> None:
    """Moderators file the products of one small category under a category the live model
    does not have: overrides and labels at once (counted as new), and the retrained model
    has the new category and answers it for those products."""
    old = Classifier.from_path(classify_bundle)
    source = _small_category(catalog_rows, old)
    target = (*source[:-1], f"{source[-1]} (split out by moderators)")
    assert target not in set(old.bundle.taxonomy.leaves)
    moved = [r for r in catalog_rows if r.path == source]
    new, counters = _correct_and_retrain(make_setup(), catalog_rows, moved, target, tmp_path)
    assert counters["prodcat_feedback_overrides_total"] == len(moved)
    assert counters["prodcat_feedback_new_category_overrides_total"] == len(moved)
    assert target in set(new.bundle.taxonomy.leaves)
    after = _top_leaves(new, moved)
    assert sum(p == target for p in after) >= 0.6 * len(moved), after


def test_category_drift_is_measured_against_the_training_prior(
    make_setup: Any, classify_bundle: Path
) -> None:
    """The bundle's metadata carries every leaf's training rows; the app's PSI gauge stays
    low while predictions follow that prior and rises once they pile into a few categories."""
    bundle = load_bundle(classify_bundle)
    assert bundle.metadata.data is not None
    counts = bundle.metadata.data.leaf_counts
    names = [format_path(leaf) for leaf in bundle.taxonomy.leaves]
    assert set(counts) == set(names), "every leaf's training rows are in metadata.json"
    port = free_port()
    s = make_setup()
    s.extra["metrics"] = {"port": port}
    rng = np.random.default_rng(7)
    shares = np.array([counts[n] for n in names], dtype=float)
    n = min_predictions(len(names))
    now = datetime.now(UTC)
    drawn = rng.choice(len(names), size=n, p=shares / shares.sum())
    like_training = [
        prediction(f"drift-{i}", bundle.taxonomy.leaves[k], bundle.version, now)
        for i, k in enumerate(drawn)
    ]
    piled = [
        prediction(f"piled-{i}", bundle.taxonomy.leaves[i % 3], bundle.version, now)
        for i in range(n)
    ]
    topic = s.topics["categorized"]
    with running_app(s.settings()) as fb:
        send(s.bootstrap, topic, like_training)
        wait_for(
            lambda: fb.metric("prodcat_feedback_consumed_total", topic=topic) >= n,
            TIMEOUT_S,
            "the predictions to be seen",
        )
        stable = _value(
            _metrics(port), "prodcat_feedback_category_psi", model_version=bundle.version
        )
        send(s.bootstrap, topic, piled)
        wait_for(
            lambda: fb.metric("prodcat_feedback_consumed_total", topic=topic) >= 2 * n,
            TIMEOUT_S,
            "the piled-up predictions to be seen",
        )
        shifted = _value(
            _metrics(port), "prodcat_feedback_category_psi", model_version=bundle.version
        )
    print(f"\nPSI over {len(names)} categories: {stable} like training, {shifted} piled up")
    assert stable is not None and stable < 0.1
    assert shifted is not None and shifted > 0.25
