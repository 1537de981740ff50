"""The demo's scripted corrections, sent the way a moderator's tool would send them.

Every correction is a ``category.feedback`` event (action ``correct``, source ``moderator``)
on the feedback topic. The feedback app (``prodcat feedback``) turns it into an override in
Redis; the next event of that product is then answered with it (source ``override``).

If the app has not written every override within the timeout, the demo says so in its notes
and summary; it never writes overrides itself, so what the screen shows is what the app did.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import redis
from confluent_kafka import Producer

from workers.core.codec import Codec
from workers.core.events import FeedbackEvent
from workers.core.overrides import override_key
from workers.core.settings import KafkaSettings
from workers.demo.data import Row
from workers.kafka.clients import writer_config

__all__ = ["Correction", "CorrectionPath", "feedback_events", "pick_corrections"]

Spawn = Callable[[str, list[str], dict[str, str]], "subprocess.Popen[bytes]"]


@dataclass(frozen=True, slots=True)
class Correction:
    """A moderator fixing the model's answer for one product."""

    product_id: str
    title: str
    wrong: tuple[str, ...]  # the model's answer that was shown
    right: tuple[str, ...]  # the category the moderator chose
    model_version: str


def feedback_events(corrections: Sequence[Correction], now: datetime) -> list[FeedbackEvent]:
    """The ``category.feedback`` events of ``corrections``."""
    return [
        FeedbackEvent(
            event_type="category.feedback",
            event_id=uuid.uuid4().hex,
            product_id=c.product_id,
            action="correct",
            category_path=list(c.right),
            rejected_category_path=list(c.wrong) or None,
            source="moderator",
            actor_id="demo-moderator",
            signal="edit",
            model_version=c.model_version,
            occurred_at=now,
        )
        for c in corrections
    ]


def pick_corrections(
    rows: list[Row],
    answers: Mapping[str, tuple[tuple[str, ...], str]],
    skip: set[str],
    n: int,
) -> list[Correction]:
    """Up to ``n`` products the model got wrong (``answers``: its answer and version per
    product, judged against the catalog's label), alternating catalogs: the moderator
    sets the catalog's label."""
    picked: list[Correction] = []
    by_dataset: dict[str, list[Correction]] = {}
    for row in rows:
        answer = answers.get(row.product_id)
        if row.product_id in skip or answer is None:
            continue
        path, version = answer
        if path != row.path[: len(path)]:
            dataset = row.dataset
            fix = Correction(row.product_id, row.title, path, row.path, version)
            by_dataset.setdefault(dataset, []).append(fix)
    queues = list(by_dataset.values())
    while len(picked) < n and any(queues):
        for queue in queues:
            if queue and len(picked) < n:
                picked.append(queue.pop(0))
    return picked


class CorrectionPath:
    """Feedback events in, overrides in Redis out, through ``prodcat feedback``."""

    def __init__(
        self,
        env: Mapping[str, str],
        kafka: KafkaSettings,
        redis_url: str,
        codec: Codec,
    ) -> None:
        self.env = dict(env)
        self.kafka = kafka
        self.redis_url = redis_url
        self.codec = codec
        self.app: subprocess.Popen[bytes] | None = None
        self.notes: list[str] = []
        self.how = "by the feedback app"

    def start(self, spawn: Spawn) -> None:
        """Start ``prodcat feedback`` so it is up before the corrections."""
        self.app = spawn("feedback", [sys.executable, "-m", "workers.cli", "feedback"], self.env)

    def apply(self, corrections: Sequence[Correction], timeout_s: float = 60.0) -> None:
        """Send the feedback events, then wait until the app has written every override."""
        producer = Producer(writer_config(self.kafka, "demo-moderator", linger_ms=5))
        topic = self.env["PRODCAT_TOPICS_FEEDBACK"]
        for event in feedback_events(corrections, datetime.now(UTC)):
            producer.produce(topic, self.codec.encode(event), event.product_id)
        producer.flush(10)
        client = redis.Redis.from_url(self.redis_url)
        prefix = self.env["PRODCAT_REDIS_KEY_PREFIX"]
        keys = [override_key(prefix, c.product_id) for c in corrections]
        try:
            deadline = time.monotonic() + timeout_s
            while (done := client.exists(*keys)) < len(keys):
                if time.monotonic() > deadline or (self.app and self.app.poll() is not None):
                    self.notes.append(
                        f"the feedback app applied {done} of {len(keys)} corrections within "
                        f"{timeout_s:.0f} s: see its log under var/demo/logs"
                    )
                    self.how = f"{done} of {len(keys)} applied by the feedback app"
                    return
                time.sleep(0.1)
        finally:
            client.close()

    def stop(self, timeout_s: float = 30.0) -> int | None:
        """SIGTERM the feedback app and wait for it; its return code (None if not run)."""
        if self.app is None:
            return None
        if self.app.poll() is None:
            self.app.send_signal(signal.SIGTERM)
        try:
            rc = self.app.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.app.kill()
            rc = self.app.wait()
        state_dir = self.env.get("PRODCAT_FEEDBACK_STATE_DIR")
        if state_dir:
            with contextlib.suppress(OSError):
                shutil.rmtree(Path(state_dir))
        return rc
