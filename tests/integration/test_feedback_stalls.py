"""An input partition faust stalled is fetched again (workers.feedback.stalls), on the
real broker and Redis.

faust-streaming can drop a fetched message around a rebalance: counted as read, never
handed to the agent, never acknowledged; the partition then waits for the next rebalance.
The race is timing-bound (about one restart in five here), so this test puts the consumer
in exactly the state it leaves (fetch position and read offset past a message that was
neither processed nor acknowledged) and checks that the app processes the message anyway.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
import redis

from export.data.catalog import Example
from tests.integration.classify_support import wait_for
from tests.integration.feedback_support import (
    TIMEOUT_S,
    AppThread,
    FeedbackSetup,
    feedback,
    leaves,
    product_event,
    read_override,
    running_app,
    send,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

T = TypeVar("T")


def on_loop(fb: AppThread, work: Callable[[], Awaitable[T]]) -> T:
    """Run ``work`` on the app's event loop (faust's consumer is not thread-safe)."""
    loop = fb.app._loop
    assert loop is not None
    return asyncio.run_coroutine_threadsafe(_call(work), loop).result(TIMEOUT_S)


async def _call(work: Callable[[], Awaitable[T]]) -> T:
    return await work()


def test_a_fetched_message_faust_dropped_is_fetched_again(
    make_setup: Callable[..., FeedbackSetup],
    catalog_rows: list[Example],
    classify_bundle: Path,
    redis_client: redis.Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A first correction is applied; a second one, for the same product, is skipped over
    as faust's race skips it. The app notices the partition stalled below its high
    watermark while it has nothing else to do, fetches it again from the committed
    offset, and the second correction's override reaches Redis."""
    caplog.set_level(logging.WARNING, logger="workers.feedback")
    s = make_setup()
    taxonomy = leaves(classify_bundle)
    row = catalog_rows[11]
    pid = row.product_id
    with running_app(s.settings()) as fb:
        send(s.bootstrap, s.topics["product_created"], [product_event(row, "c-1")])
        send(s.bootstrap, s.topics["feedback"], [feedback(pid, "moderator", taxonomy[3])])
        wait_for(
            lambda: read_override(redis_client, s.prefix, pid) == taxonomy[3],
            TIMEOUT_S,
            "the first correction's override",
        )
        wait_for(fb.app._tables_ready, TIMEOUT_S, "the app to be out of recovery")
        consumer: Any = fb.app._app.consumer
        (tp,) = [
            tp
            for tp in consumer.assignment()
            if tp.topic == s.topics["feedback"] and (consumer.highwater(tp) or 0) > 0
        ]
        end = consumer.highwater(tp)

        async def pause() -> None:
            consumer.pause_partitions([tp])  # faust hands nothing of it to the agent now

        async def skip_and_resume() -> None:
            await consumer.seek(tp, end + 1)  # fetch position and read offset past it
            consumer.resume_partitions([tp])

        on_loop(fb, pause)
        send(s.bootstrap, s.topics["feedback"], [feedback(pid, "moderator", taxonomy[4])])
        on_loop(fb, skip_and_resume)
        skipped = time.monotonic()
        wait_for(
            lambda: read_override(redis_client, s.prefix, pid) == taxonomy[4],
            TIMEOUT_S,
            "the skipped correction's override",
            interval_s=0.1,
        )
        took_s = time.monotonic() - skipped
        assert fb.metric("prodcat_feedback_input_refetched_total") >= 1
        # counted once the corrected event is sent, just after the Redis write
        wait_for(
            lambda: fb.metric("prodcat_feedback_overrides_total", source="moderator") == 2,
            TIMEOUT_S,
            "the second override counted",
        )
        time.sleep(1.0)  # a refetch from the log's start repeats the first correction ...
        assert fb.metric("prodcat_feedback_overrides_total", source="moderator") == 2  # ... once
    lines = [r.getMessage() for r in caplog.records if r.name == "workers.feedback.stalls"]
    named = re.compile(rf"^{re.escape(tp.topic)}\[{tp.partition}\]: messages from offset (\d+) ")
    offsets = [int(m.group(1)) for line in lines if (m := named.match(line))]
    # from the committed offset, or from the log's start while nothing is committed there
    assert offsets and all(offset <= end for offset in offsets), lines
    print(f"\nstalled partition: the skipped correction applied {took_s:.1f} s later; {lines}")
