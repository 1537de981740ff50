"""Helpers for the feedback app's integration tests: set-up, the app on a thread, events.

Each test has its own topics, consumer groups, faust app id (so its own changelog topics,
deleted afterwards), state directory and Redis key prefix.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest
import redis

from export.data.catalog import Example
from tests.integration.classify_support import (
    CODEC,
    PARTITIONS,
    REPO,
    Setup,
    categorized,
    produce,
    read_all,
    wait_for,
)
from workers.core.events import (
    CategorizedEvent,
    FeedbackEvent,
    LabelEvent,
    ProductEvent,
    derive_event_id,
)
from workers.core.events import product_event as make_product_event
from workers.core.overrides import decode_override, override_key
from workers.core.settings import Settings
from workers.feedback.app import FeedbackApp
from workers.inference.bundle import load_bundle
from workers.kafka.sandbox import TopicSandbox

TIMEOUT_S = 60.0
LABELS = msgspec.json.Decoder(LabelEvent)


class FeedbackSetup(Setup):
    """Setup plus the feedback topics, a faust app id and a state directory."""

    @classmethod
    def make(
        cls,
        factory: TopicSandbox,
        bootstrap: str,
        redis_url: str,
        bundle: Path,
        state_dir: Path,
        **feedback: Any,
    ) -> FeedbackSetup:
        base = Setup.create(factory, bootstrap, redis_url, bundle)
        s = cls(base.bootstrap, base.redis_url, base.bundle, base.topics)
        s.topics["feedback"] = factory.new(PARTITIONS, name="feedback")
        s.topics["labels"] = factory.new(
            PARTITIONS, name="labels", config={"cleanup.policy": "compact"}
        )
        app_id = f"prodcat-fb-test-{uuid.uuid4().hex[:10]}"
        for table in ("products", "quality"):
            factory.adopt(f"{app_id}-{table}-changelog")
        s.extra["feedback"] = {"app_id": app_id, "state_dir": str(state_dir), **feedback}
        return s


class AppThread:
    """A FeedbackApp started here and run on a background thread."""

    def __init__(self, settings: Settings) -> None:
        self.threads_before = set(threading.enumerate())
        self.app = FeedbackApp(settings, instance="test")
        self.error: BaseException | None = None
        self.app.start()
        self.thread = threading.Thread(target=self._run, name="feedback-app", daemon=True)
        self.thread.start()
        wait_for(lambda: self.app.running or not self.thread.is_alive(), TIMEOUT_S, "app start")
        assert self.app.running, f"feedback app did not start: {self.error!r}"

    def _run(self) -> None:
        try:
            self.app.run()
        except BaseException as exc:  # surfaced by stop()
            self.error = exc

    def metric(self, name: str, **labels: str) -> float:
        value = self.app.metrics.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value

    def stop(self) -> None:
        self.app.request_stop()
        self.thread.join(TIMEOUT_S)
        self.app.stop()
        assert not self.thread.is_alive(), "feedback app thread did not stop"
        if self.error is not None:
            raise self.error
        left = [t for t in threading.enumerate() if t not in self.threads_before and not t.daemon]
        assert not left, f"the feedback app left threads running: {left}"


@contextmanager
def running_app(settings: Settings) -> Iterator[AppThread]:
    a = AppThread(settings)
    try:
        yield a
    finally:
        a.stop()


def product_event(row: Example, event_id: str, kind: str = "product.created") -> ProductEvent:
    return make_product_event(
        row,
        product_id=row.product_id,
        event_id=event_id,
        occurred_at=datetime.now(UTC),
        event_type=kind,  # type: ignore[arg-type]
        seller_id="seller-1",
    )


def prediction(
    product_id: str, path: tuple[str, ...], version: str, at: datetime, source: str = "model"
) -> CategorizedEvent:
    return CategorizedEvent(
        event_type="product.categorized",
        event_id=derive_event_id("test", product_id, version, str(at)),
        product_id=product_id,
        category_id=derive_event_id(*path)[:16],
        category_path=list(path),
        confidence=0.9,
        alternatives=[],
        abstained=False,
        needs_review=False,
        model_version=version,
        source=source,  # type: ignore[arg-type]
        causation_id=f"cause-{product_id}",
        input_hash="0123456789abcdef",
        event_time=at,
        classified_at=at,
    )


def feedback(
    product_id: str,
    source: str,
    path: tuple[str, ...] | None,
    *,
    action: str = "correct",
    at: datetime | None = None,
    actor: str | None = None,
    seller: str | None = None,
) -> FeedbackEvent:
    return FeedbackEvent(
        event_type="category.feedback",
        event_id=f"fb-{uuid.uuid4().hex}",
        product_id=product_id,
        action=action,  # type: ignore[arg-type]
        category_path=list(path) if path is not None else None,
        source=source,  # type: ignore[arg-type]
        actor_id=actor,
        seller_id=seller,
        occurred_at=at or datetime.now(UTC),
    )


def send(bootstrap: str, topic: str, events: list[Any]) -> None:
    produce(bootstrap, topic, ((e.product_id.encode(), CODEC.encode(e), None) for e in events))


def leaves(bundle: Path) -> list[tuple[str, ...]]:
    return list(load_bundle(bundle).taxonomy.leaves)


def read_override(client: redis.Redis, prefix: str, product_id: str) -> tuple[str, ...] | None:
    raw = client.get(override_key(prefix, product_id))
    if raw is None:
        return None
    found = decode_override(raw)
    return None if found is None else found.path


def distinct(rows: list[Example], n: int, skip: int = 0) -> list[Example]:
    """``n`` catalog rows with distinct product ids (and distinct titles), after ``skip``."""
    seen: set[str] = set()
    out: list[Example] = []
    for r in rows[skip:]:
        if r.product_id in seen or r.title in seen:
            continue
        seen |= {r.product_id, r.title}
        out.append(r)
        if len(out) == n:
            break
    return out


def corrections_for(
    answers: list[CategorizedEvent], taxonomy: list[tuple[str, ...]]
) -> dict[str, tuple[str, ...]]:
    """A moderator's category for each answered product, never the one the model gave."""
    out = {}
    for i, e in enumerate(answers):
        shown = tuple(e.category_path)
        out[e.product_id] = next(
            p for k in range(len(taxonomy)) if (p := taxonomy[(7 * i + k) % len(taxonomy)]) != shown
        )
    return out


def latest_answers(setup: FeedbackSetup) -> dict[str, CategorizedEvent]:
    """Each product's last categorized event in topic order (a product's events share a
    partition): the answer search and recommendations end up with."""
    out: dict[str, CategorizedEvent] = {}
    for e in categorized(read_all(setup.bootstrap, setup.topics["categorized"], settle_s=1.0)):
        out[e.product_id] = e  # read_all keeps each partition in offset order
    return out


def create(
    s: FeedbackSetup, rows: list[Example], tag: str = "c", kind: str = "product.created"
) -> list[ProductEvent]:
    """Send a product event per row (to product.created or product.updated)."""
    events = [product_event(r, f"{tag}-{i}", kind) for i, r in enumerate(rows)]
    send(s.bootstrap, s.topics[kind.replace(".", "_")], events)
    return events


def correct(s: FeedbackSetup, paths: dict[str, tuple[str, ...]]) -> None:
    """A moderator's correction per product."""
    send(s.bootstrap, s.topics["feedback"], [feedback(p, "moderator", q) for p, q in paths.items()])


def overrides_held(client: redis.Redis, prefix: str, wanted: dict[str, tuple[str, ...]]) -> int:
    return sum(read_override(client, prefix, pid) == path for pid, path in wanted.items())


class Paced(threading.Thread):
    """Sends feedback events one by one at ``per_s`` a second (a moderator tool's stream)."""

    def __init__(self, setup: FeedbackSetup, events: list[FeedbackEvent], per_s: float) -> None:
        super().__init__(name="paced-feedback", daemon=True)
        self.setup, self.events, self.per_s = setup, events, per_s
        self.sent = 0

    def run(self) -> None:
        start = time.monotonic()
        for i, event in enumerate(self.events):
            time.sleep(max(0.0, start + i / self.per_s - time.monotonic()))
            send(self.setup.bootstrap, self.setup.topics["feedback"], [event])
            self.sent += 1


class AppProcess:
    """``prodcat feedback`` as a subprocess (logs to a file)."""

    def __init__(self, setup: FeedbackSetup, log_path: Path, instance: str) -> None:
        self.log_path = log_path
        with log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "workers.cli", "feedback", "--instance", instance],
                cwd=REPO, env=setup.env(), stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def wait_for(self, predicate: Callable[[], bool], what: str) -> None:
        """Poll ``predicate``; on a time-out fail with the end of this instance's log."""
        try:
            wait_for(predicate, TIMEOUT_S, what, interval_s=0.05)
        except pytest.fail.Exception:
            pytest.fail(f"timed out waiting for {what}; log:\n{self.logs()}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)


def send_all_handled(app: AppThread, s: FeedbackSetup, topic_key: str, events: list[Any]) -> None:
    """Send ``events`` to the setup's ``topic_key`` topic and wait until the app has consumed
    that many from it (counts are per app run: send each topic's events once per run)."""
    topic = s.topics[topic_key]
    send(s.bootstrap, topic, events)
    wait_for(
        lambda: app.metric("prodcat_feedback_consumed_total", topic=topic) >= len(events),
        TIMEOUT_S,
        f"{len(events)} events on {topic_key} to be handled",
    )


def dump_labels_cli(s: FeedbackSetup, out: Path, *flags: str) -> list[LabelEvent]:
    """``prodcat labels dump --out OUT [FLAGS]`` as a user runs it; returns the labels."""
    dump = subprocess.run(
        [sys.executable, "-m", "workers.cli", "labels", "dump", "--out", str(out), *flags],
        cwd=REPO, env=s.env(), capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert dump.returncode == 0, dump.stderr[-2000:]
    return [LABELS.decode(line) for line in out.read_bytes().splitlines()]


def train_cli(catalog: list[Example], labels: Path, out: Path, *flags: str) -> Path:
    """``prodcat train`` on ``catalog`` (written as a generic JSONL file) plus the labels
    file, with ``flags``; returns the bundle directory."""
    out.mkdir(parents=True, exist_ok=True)
    data = out / "catalog.jsonl"
    with data.open("w", encoding="utf-8") as fh:
        for r in catalog:
            record = {
                "product_id": r.product_id, "title": r.title, "brand": r.brand,
                "description": r.description, "attributes": r.attributes,
                "category_path": list(r.path),
            }  # fmt: skip
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
    train = subprocess.run(
        [
            sys.executable, "-m", "workers.cli", "train", "--data", str(data),
            "--labels", str(labels), *flags, "--no-baseline", "--quiet",
            "--out", str(out / "bundles"),
        ],
        cwd=REPO, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert train.returncode == 0, train.stderr[-3000:]
    return sorted((out / "bundles").rglob("manifest.json"))[-1].parent
