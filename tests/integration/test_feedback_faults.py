"""Faults under the feedback app: Redis restarted empty, Redis away, the result cache lost,
the app killed (-9). Real broker, real Redis: the tests that stop or restart Redis use a
private redis-server of their own (``private_redis``), never the shared one.

Each test prints its figures (corrections sent, overrides present, answers with the
override, recovery time, log lines); run with ``-s`` to see them.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis

from export.data.catalog import Example
from tests.integration.classify_support import (
    categorized,
    read_all,
    running_worker,
    wait_for,
)
from tests.integration.feedback_support import (
    TIMEOUT_S,
    AppProcess,
    FeedbackSetup,
    Paced,
    correct,
    corrections_for,
    create,
    distinct,
    feedback,
    latest_answers,
    leaves,
    overrides_held,
    prediction,
    product_event,
    read_override,
    running_app,
    send,
)
from tests.integration.redis_support import PrivateRedis
from workers.core.categories import category_id
from workers.core.events import (
    CategorizedEvent,
    override_categorized,
)
from workers.core.overrides import encode_override

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MakeSetup = Callable[..., FeedbackSetup]


def warnings_from(caplog: pytest.LogCaptureFixture, prefix: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith(prefix) and r.levelno >= logging.WARNING
    ]


# --------------------------------------------------------------------------- Redis restarted


def test_redis_restarted_empty_mid_stream_loses_no_override(
    make_setup: MakeSetup,
    catalog_rows: list[Example],
    classify_bundle: Path,
    private_redis: PrivateRedis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Real products through a classify worker, then a stream of moderator corrections at
    50/s; a fifth of the way in, Redis stops and comes back empty. Afterwards every
    correction's override is in Redis, the worker answers every corrected product with it,
    and every corrected product's latest answer on the topic is the override."""
    caplog.set_level(logging.INFO, logger="workers")
    s = make_setup(redis_url=private_redis.url, redis_probe_interval_s=0.5)
    s.extra["redis"] = {"socket_timeout_s": 0.5}
    settings = s.settings()
    rows = distinct(catalog_rows, 200)
    client = private_redis.client()
    with running_worker(settings) as w, running_app(settings) as fb:
        create(s, rows)
        first = categorized(read_all(s.bootstrap, s.topics["categorized"], expect=len(rows)))
        assert len(first) == len(rows)
        wait_for(
            lambda: (
                fb.metric("prodcat_feedback_consumed_total", topic=s.topics["categorized"])
                >= len(rows)
            ),
            TIMEOUT_S,
            "the app to see every prediction",
        )
        right = corrections_for(first, leaves(classify_bundle))
        stream = Paced(
            s, [feedback(pid, "moderator", path, actor="mod-1") for pid, path in right.items()], 50
        )

        def applied() -> float:
            return fb.metric("prodcat_feedback_overrides_total", source="moderator")

        stream.start()
        wait_for(lambda: applied() >= len(right) // 5, TIMEOUT_S, "a fifth of the corrections")
        private_redis.stop()  # Redis goes away with every key ...
        before_fault = applied()
        time.sleep(3.0)
        private_redis.start()  # ... and comes back empty
        back_at = time.monotonic()
        stream.join(TIMEOUT_S)
        assert stream.sent == len(right)
        wait_for(lambda: applied() == len(right), TIMEOUT_S, "every correction applied")
        wait_for(
            lambda: overrides_held(client, s.prefix, right) == len(right),
            TIMEOUT_S,
            "every override back in Redis",
        )
        recovered_s = time.monotonic() - back_at
        restored = fb.metric("prodcat_feedback_overrides_restored_total", reason="missing")
        reasserted = fb.metric("prodcat_feedback_overrides_reasserted_total")
        assert restored >= 1, "the overrides applied before the fault came from the table"
        assert fb.metric("prodcat_feedback_restore_passes_total", trigger="redis_restarted") >= 1

        # The worker answers every corrected product with its override. (A first update
        # lets the worker find Redis again: its pooled connection died with the restart.)
        warm = product_event(rows[0], "u-warm", "product.updated")
        send(s.bootstrap, s.topics["product_updated"], [warm])
        wait_for(
            lambda: any(
                e.causation_id == warm.event_id
                for e in categorized(read_all(s.bootstrap, s.topics["categorized"], settle_s=0.3))
            ),
            TIMEOUT_S,
            "the warm-up answer",
        )
        updates = [product_event(r, f"u-{i}", "product.updated") for i, r in enumerate(rows)]
        send(s.bootstrap, s.topics["product_updated"], updates)
        causes = {u.event_id for u in updates}

        def answers() -> list[CategorizedEvent]:
            out = categorized(read_all(s.bootstrap, s.topics["categorized"], settle_s=0.5))
            return [e for e in out if e.causation_id in causes]

        wait_for(lambda: len(answers()) >= len(updates), TIMEOUT_S, "the worker's answers")
        by_product = {e.product_id: e for e in answers() if e.source == "override"}
        with_override = sum(
            tuple(by_product[pid].category_path) == path for pid, path in right.items()
            if pid in by_product
        )  # fmt: skip
        assert with_override == len(right)
        assert w.worker.metrics.overrides._value.get() >= len(right)
    last = latest_answers(s)
    assert {pid: (e.source, tuple(e.category_path)) for pid, e in last.items()} == {
        pid: ("override", path) for pid, path in right.items()
    }
    lines = warnings_from(caplog, "workers.feedback")
    every = warnings_from(caplog, "")
    print(
        f"\nredis restarted empty: corrections sent {stream.sent}, applied before the fault "
        f"{before_fault:.0f}, overrides present {overrides_held(client, s.prefix, right)}/"
        f"{len(right)}, answered with the override {with_override}/{len(right)}, restored "
        f"{restored:.0f}, re-asserted {reasserted:.0f}, all present {recovered_s:.1f} s after "
        f"Redis was back; warning lines: {len(every)} in all, {len(lines)} from the app: "
        f"{lines}"
    )
    client.close()


# --------------------------------------------------------------------------- Redis away


def test_redis_away_overrides_resume_when_the_probe_sees_it_back(
    make_setup: MakeSetup,
    catalog_rows: list[Example],
    classify_bundle: Path,
    private_redis: PrivateRedis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Redis stops for 8 s (long enough for the old doubling back-off to wait 6.4 s): the
    write waits, and resumes as soon as the probe sees Redis answer. One warning when it
    went away, one line when it came back."""
    caplog.set_level(logging.DEBUG, logger="workers.feedback")
    s = make_setup(redis_url=private_redis.url, redis_probe_interval_s=0.5)
    s.extra["redis"] = {"socket_timeout_s": 0.5}
    taxonomy = leaves(classify_bundle)
    row = catalog_rows[3]
    client = private_redis.client()
    with running_app(s.settings()) as fb:
        send(s.bootstrap, s.topics["product_created"], [product_event(row, "c-1")])
        wait_for(
            lambda: (
                fb.metric("prodcat_feedback_consumed_total", topic=s.topics["product_created"]) >= 1
            ),
            TIMEOUT_S,
            "the product to be seen",
        )
        wait_for(lambda: fb.metric("prodcat_feedback_redis_available") == 1, TIMEOUT_S, "probe")
        private_redis.stop()
        send(
            s.bootstrap, s.topics["feedback"], [feedback(row.product_id, "moderator", taxonomy[5])]
        )
        wait_for(lambda: fb.metric("prodcat_feedback_redis_available") == 0, TIMEOUT_S, "down")
        time.sleep(8.0)
        assert fb.metric("prodcat_feedback_overrides_total", source="moderator") == 0
        private_redis.start()
        back = time.monotonic()
        wait_for(
            lambda: read_override(client, s.prefix, row.product_id) == taxonomy[5],
            TIMEOUT_S,
            "the override after Redis came back",
            interval_s=0.05,
        )
        resumed_s = time.monotonic() - back
        assert fb.metric("prodcat_feedback_redis_available") == 1
    records = [r for r in caplog.records if r.name == "workers.feedback.redislink"]
    went = [r for r in records if r.levelno == logging.WARNING]
    came = [r for r in records if "answers again" in r.getMessage()]
    assert len(went) == 1, [r.getMessage() for r in went]
    assert len(came) == 1
    # Resumed on the probe's word, not after a blind back-off: well inside the old 6.4 s wait
    # (probe every 0.2 s while down, writes retried at least every 1 s).
    assert resumed_s < 6.4, resumed_s
    print(
        f"\nredis away 8 s: override written {resumed_s:.2f} s after Redis was back; "
        f"redislink lines: {len(records)} ({len(went)} warning, {len(came)} back, "
        f"{len(records) - len(went) - len(came)} debug)"
    )
    client.close()


# --------------------------------------------------------------------------- drift


def test_stale_missing_and_flushed_overrides_are_repaired(
    make_setup: MakeSetup,
    catalog_rows: list[Example],
    classify_bundle: Path,
    private_redis: PrivateRedis,
) -> None:
    """Redis drifts from the table without restarting: one override changed by hand, one
    deleted (the periodic reconciliation repairs both), then everything flushed (the marker
    hash goes with it, and the app restores at its next probe)."""
    s = make_setup(
        redis_url=private_redis.url, redis_probe_interval_s=0.5, reconcile_interval_s=2.0
    )
    taxonomy = leaves(classify_bundle)
    rows = distinct(catalog_rows, 3, skip=1200)
    wanted = {r.product_id: taxonomy[10 + i] for i, r in enumerate(rows)}
    client = private_redis.client()
    with running_app(s.settings()) as fb:
        create(s, rows)
        wait_for(
            lambda: (
                fb.metric("prodcat_feedback_consumed_total", topic=s.topics["product_created"])
                >= len(rows)
            ),
            TIMEOUT_S,
            "the products to be seen",
        )
        correct(s, wanted)
        wait_for(lambda: overrides_held(client, s.prefix, wanted) == 3, TIMEOUT_S, "the overrides")
        (stale, missing, _) = wanted
        client.set(f"{s.prefix}:override:{stale}", override_value_for(taxonomy[0]))
        client.delete(f"{s.prefix}:override:{missing}")
        wait_for(lambda: overrides_held(client, s.prefix, wanted) == 3, TIMEOUT_S, "the repair")
        assert fb.metric("prodcat_feedback_overrides_restored_total", reason="stale") == 1
        assert fb.metric("prodcat_feedback_overrides_restored_total", reason="missing") == 1
        assert fb.metric("prodcat_feedback_restore_passes_total", trigger="periodic") >= 1
        client.flushall()
        wait_for(lambda: overrides_held(client, s.prefix, wanted) == 3, TIMEOUT_S, "the restore")
        assert fb.metric("prodcat_feedback_restore_passes_total", trigger="redis_emptied") >= 1
    client.close()


def override_value_for(path: tuple[str, ...]) -> bytes:
    """An override value as someone might set by hand."""
    return encode_override(
        path, source="moderator", feedback_event_id="by-hand", occurred_at="2026-01-01T00:00:00"
    )


# --------------------------------------------------------------------------- result cache


def test_losing_the_result_cache_costs_model_time_never_a_wrong_answer(
    make_setup: MakeSetup,
    catalog_rows: list[Example],
    classify_bundle: Path,
    redis_client: redis.Redis,
) -> None:
    """The worker's result cache lost costs model runs; the corrected products are still
    answered with their override. And an override lost from Redis alone: the worker answers
    by the model, the app sees that answer, puts the override back and answers as the worker
    would have with it (same event id), so the product's latest answer is the override."""
    s = make_setup()
    settings = s.settings()
    rows = distinct(catalog_rows, 40, skip=500)
    with running_worker(settings) as w, running_app(settings) as fb:
        create(s, rows)
        first = categorized(read_all(s.bootstrap, s.topics["categorized"], expect=len(rows)))
        wait_for(
            lambda: (
                fb.metric("prodcat_feedback_consumed_total", topic=s.topics["categorized"])
                >= len(rows)
            ),
            TIMEOUT_S,
            "the app to see every prediction",
        )
        right = corrections_for(first[:20], leaves(classify_bundle))
        correct(s, right)
        wait_for(
            lambda: overrides_held(redis_client, s.prefix, right) == len(right),
            TIMEOUT_S,
            "the overrides",
        )
        m = w.worker.metrics
        n_answers = len(rows)

        def answer_round(tag: str) -> dict[str, list[CategorizedEvent]]:
            """Update every product; the answers caused by it, per product, in topic order."""
            nonlocal n_answers
            updates = create(s, rows, tag, "product.updated")
            n_answers += len(updates)
            causes = {u.event_id for u in updates}
            out: dict[str, list[CategorizedEvent]] = {}
            for e in categorized(read_all(s.bootstrap, s.topics["categorized"], expect=n_answers)):
                if e.causation_id in causes:
                    out.setdefault(e.product_id, []).append(e)
            return out

        def sources(got: dict[str, list[CategorizedEvent]], corrected: bool) -> set[str]:
            return {e.source for p, es in got.items() if (p in right) == corrected for e in es}

        # The result cache is lost (every result key gone; the overrides stay).
        results = list(redis_client.scan_iter(match=f"{s.prefix}:result:*", count=1000))
        assert len(results) >= len(rows) - len(right)
        redis_client.delete(*results)
        misses = m.cache_misses._value.get()
        got = answer_round("u1")
        assert {p: [(e.source, tuple(e.category_path)) for e in es] for p, es in got.items()
                if p in right} == {p: [("override", q)] for p, q in right.items()}  # fmt: skip
        assert sources(got, corrected=False) == {"model"}
        assert m.cache_misses._value.get() - misses == len(rows) - len(right)  # model time
        got = answer_round("u2")
        assert (sources(got, corrected=False), sources(got, corrected=True)) == (
            {"cache"},
            {"override"},
        )

        # Five overrides lost (the worker answers them by the model now: their results went
        # with the cache, and answers with an override are not cached).
        lost = dict(list(right.items())[:5])
        redis_client.delete(*[f"{s.prefix}:override:{p}" for p in lost])
        n_answers += len(lost)  # the app's answers with the override, after the worker's
        got = answer_round("u3")
        for p, q in lost.items():
            worker, app = got[p]  # the worker could not know; the app follows it
            assert worker.source in ("model", "cache")
            assert (app.source, tuple(app.category_path)) == ("override", q)
            assert app.event_id == override_categorized(
                causation_id=worker.causation_id, product_id=p, category_id=category_id(q),
                category_path=q, model_version=worker.model_version,
                input_hash=worker.input_hash, event_time=worker.event_time,
                classified_at=app.classified_at,
            ).event_id, "the id the worker gives an override answer"  # fmt: skip
        assert overrides_held(redis_client, s.prefix, lost) == len(lost)
        assert fb.metric("prodcat_feedback_overrides_reasserted_total") == len(lost)
        got = answer_round("u4")
        assert {p: [(e.source, tuple(e.category_path)) for e in got[p]] for p in lost} == {
            p: [("override", q)] for p, q in lost.items()
        }
    last = latest_answers(s)
    assert all(
        (last[p].source, tuple(last[p].category_path)) == ("override", q) for p, q in right.items()
    )


# --------------------------------------------------------------------------- kill -9


@pytest.mark.parametrize("static", [False, True], ids=["dynamic", "static"])
def test_killed_app_processes_again_within_15_s(
    make_setup: MakeSetup,
    catalog_rows: list[Example],
    classify_bundle: Path,
    redis_client: redis.Redis,
    tmp_path: Path,
    static: bool,
) -> None:
    """kill -9 of ``prodcat feedback`` and an immediate restart under the same name: the
    corrections sent after the kill are applied within 15 s of it (the group no longer
    waits a 60 s session out), and none sent before it is lost."""
    s = make_setup(static_membership=static)
    s.extra["metrics"] = {"port": 0}
    taxonomy = leaves(classify_bundle)
    rows = distinct(catalog_rows, 12, skip=900)
    create(s, rows)
    now = datetime.now(UTC)
    send(
        s.bootstrap,
        s.topics["categorized"],
        [prediction(r.product_id, taxonomy[0], "v1", now) for r in rows],
    )
    before = {r.product_id: taxonomy[1] for r in rows[:6]}
    after = {r.product_id: taxonomy[2] for r in rows[6:]}
    procs: list[AppProcess] = []
    try:
        procs.append(AppProcess(s, tmp_path / "first.log", "fb-0"))
        correct(s, before)
        procs[0].wait_for(
            lambda: overrides_held(redis_client, s.prefix, before) == len(before),
            "the first instance's overrides",
        )
        procs[0].kill()
        killed = time.monotonic()
        procs.append(AppProcess(s, tmp_path / "second.log", "fb-0"))
        correct(s, after)
        procs[1].wait_for(
            lambda: overrides_held(redis_client, s.prefix, after) == len(after),
            "the restarted instance's overrides",
        )
        back_s = time.monotonic() - killed
        assert overrides_held(redis_client, s.prefix, before) == len(before)
        assert back_s <= 15.0, f"processing resumed {back_s:.1f} s after kill -9"
        procs[1].proc.send_signal(signal.SIGTERM)
        assert procs[1].proc.wait(TIMEOUT_S) == 0, procs[1].logs()
        print(f"\nkill -9 ({'static' if static else 'dynamic'} membership): corrections "
              f"{len(before)} before, {len(after)} after, all applied; processing again "
              f"{back_s:.1f} s after the kill")  # fmt: skip
    finally:
        for p in procs:
            p.kill()
