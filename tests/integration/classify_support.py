"""Helpers for the classify worker's integration tests (real Kafka, real Redis, real model).

The bundle is trained once per test session from a real catalog slice (bigbasket,
4000 rows, 2 epochs, fasttext only) by the ``prodcat train`` CLI in a subprocess, so
TensorFlow never loads into the test process. It is kept under pytest's session
base temp dir and shared by every module that uses :func:`classify_bundle`.
"""

from __future__ import annotations

import functools
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest
import redis
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from export.data.catalog import Example
from export.data.datasets import load_dataset
from workers.classify.factory import open_worker
from workers.core.codec import Codec
from workers.core.events import CategorizedEvent, ProductEvent, product_event
from workers.core.product import ProductText
from workers.core.settings import Settings
from workers.inference.model import Classifier
from workers.kafka.sandbox import TopicSandbox

REPO = Path(__file__).resolve().parents[2]
TRAIN_ROWS = 4000
PARTITIONS = 3
CODEC = Codec(1 << 20)
CATEGORIZED = msgspec.json.Decoder(CategorizedEvent)


# --------------------------------------------------------------------------- bundle and rows


def train_bundle(data_dir: Path, out: Path) -> Path:
    """Train the test bundle with the CLI (subprocess); returns the bundle directory.

    PRODCAT_TEST_CLASSIFY_BUNDLE names an already trained bundle to use instead (for quick
    local iterations)."""
    given = os.environ.get("PRODCAT_TEST_CLASSIFY_BUNDLE")
    if given:
        return Path(given)
    done = out / "bundle-path.txt"
    if done.is_file():
        return Path(done.read_text().strip())
    out.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable, "-m", "workers.cli", "train", "--data", "bigbasket",
        "--data-dir", str(data_dir), "--limit", str(TRAIN_ROWS), "--epochs", "4",
        "--candidates", "bag", "--no-baseline", "--quiet", "--out", str(out / "bundles"),
    ]  # fmt: skip
    result = subprocess.run(cmd, check=False, cwd=REPO, capture_output=True, text=True, timeout=600)
    (out / "train-stderr.txt").write_text(result.stderr, encoding="utf-8")  # see test_cli.py
    if result.returncode != 0:
        pytest.fail(f"prodcat train failed ({result.returncode}):\n{result.stderr[-3000:]}")
    manifests = sorted((out / "bundles").rglob("manifest.json"))
    if not manifests:
        pytest.fail(f"prodcat train wrote no bundle under {out}:\n{result.stderr[-2000:]}")
    bundle = manifests[-1].parent
    done.write_text(str(bundle))
    return bundle


def shared_bundle(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's test bundle (trained on first use; every module's fixture shares it)."""
    return train_bundle(data_dir, tmp_path_factory.getbasetemp() / "classify-bundle")


@functools.cache
def load_rows(data_dir: Path) -> list[Example]:
    """The catalog slice the bundle was trained on (the first 4000 bigbasket rows)."""
    examples, _ = load_dataset("bigbasket", data_dir, limit=TRAIN_ROWS)
    return examples


def text_of(e: Example) -> ProductText:
    return ProductText(
        title=e.title, brand=e.brand, description=e.description, attributes=e.attributes
    )


def offline_categories(bundle: Path, rows: list[Example]) -> list[str]:
    classifier = Classifier.from_path(bundle)
    return [d.category_id for d in classifier.classify([text_of(e) for e in rows])]


def product_events(rows: Iterable[Example], tag: str, copy: int = 0) -> list[ProductEvent]:
    now = datetime.now(UTC)
    return [
        product_event(
            e, product_id=f"{e.product_id}-{copy}", event_id=f"{tag}-{copy}-{i}", occurred_at=now
        )
        for i, e in enumerate(rows)
    ]


# --------------------------------------------------------------------------- kafka helpers


Record = tuple[bytes | None, bytes | None, list[tuple[str, str | bytes | None]] | None]


def produce(bootstrap: str, topic: str, records: Iterable[Record]) -> int:
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "partitioner": "murmur2_random"})
    n = 0
    for key, value, headers in records:
        while True:
            try:
                p.produce(topic, value, key, headers=headers)
                break
            except BufferError:
                p.poll(0.1)
        n += 1
    assert p.flush(30) == 0
    return n


def produce_events(bootstrap: str, topic: str, events: Iterable[ProductEvent]) -> int:
    return produce(
        bootstrap, topic, ((e.product_id.encode(), CODEC.encode(e), None) for e in events)
    )


def read_all(
    bootstrap: str,
    topic: str,
    *,
    expect: int | None = None,
    timeout_s: float = 60.0,
    settle_s: float = 1.0,
    read_committed: bool = False,
) -> list[Any]:
    """Every message of ``topic`` from the start: until ``expect`` are read (then ``settle_s``
    more, to catch extras), or until nothing new arrives for ``settle_s`` without ``expect``."""
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed" if read_committed else "read_uncommitted",
        }
    )
    meta = c.list_topics(topic, timeout=10).topics[topic]
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in meta.partitions])
    out: list[Any] = []
    deadline = time.monotonic() + timeout_s
    last_new = time.monotonic()
    reached_at: float | None = None
    try:
        while time.monotonic() < deadline:
            batch = c.consume(1000, 0.2)
            now = time.monotonic()
            got = [m for m in batch if m.error() is None]
            if got:
                out.extend(got)
                last_new = now
            if expect is not None:
                if len(out) >= expect and reached_at is None:
                    reached_at = now
                if reached_at is not None and now - reached_at >= settle_s:
                    break
            elif now - last_new >= settle_s:
                break
    finally:
        c.close()
    return out


def categorized(messages: list[Any]) -> list[CategorizedEvent]:
    return [CATEGORIZED.decode(m.value()) for m in messages]


def causation_counts(events: list[CategorizedEvent]) -> Counter[str]:
    return Counter(e.causation_id for e in events)


def committed(
    bootstrap: str, group: str, topic: str, partitions: int = PARTITIONS
) -> dict[int, int]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        tps = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
        return {tp.partition: tp.offset for tp in tps}
    finally:
        c.close()


def end_offsets(bootstrap: str, topic: str, partitions: int = PARTITIONS) -> dict[int, int]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"w-{uuid.uuid4().hex}"})
    try:
        return {
            p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in range(partitions)
        }
    finally:
        c.close()


def wait_for(predicate: Any, timeout_s: float, what: str, interval_s: float = 0.2) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval_s)
    pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}")


def delete_keys(redis_url: str, prefix: str) -> None:
    """Remove every key a test's workers wrote under ``prefix`` (Redis is shared)."""
    client = redis.Redis.from_url(redis_url, password=os.environ.get("PRODCAT_REDIS_PASSWORD"))
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=5000))
        for i in range(0, len(keys), 5000):
            client.unlink(*keys[i : i + 5000])
    finally:
        client.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- worker set-up


@dataclass
class Setup:
    """Unique topics, group and Redis namespace for one test's workers."""

    bootstrap: str
    redis_url: str
    bundle: Path
    topics: dict[str, str]
    group: str = field(default_factory=lambda: f"classify-test-{uuid.uuid4().hex[:10]}")
    prefix: str = field(default_factory=lambda: f"prodcat-test:{uuid.uuid4().hex[:10]}")
    extra: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def create(cls, factory: TopicSandbox, bootstrap: str, redis_url: str, bundle: Path) -> Setup:
        names = {
            key: factory.new(PARTITIONS, name=key)
            for key in (
                "product_created",
                "product_updated",
                "categorized",
                "review",
                "dead_letter",
            )
        }
        # A control topic of its own: a worker follows the live model announced there.
        names["models"] = factory.new(1, name="models")
        return cls(bootstrap, redis_url, bundle, names)

    def sections(self) -> dict[str, dict[str, Any]]:
        base: dict[str, dict[str, Any]] = {
            "kafka": {"bootstrap": self.bootstrap, "partitions": PARTITIONS},
            "topics": dict(self.topics),
            "redis": {"url": self.redis_url, "key_prefix": self.prefix},
            "model": {"bundle": str(self.bundle)},
            "metrics": {"port": 0},
            "classify": {"group_id": self.group, "drain_timeout_s": 15.0},
        }
        for section, values in self.extra.items():
            base.setdefault(section, {}).update(values)
        return base

    def settings(self) -> Settings:
        return Settings().with_overrides(**self.sections())

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PRODCAT_")}
        for section, values in self.sections().items():
            for name, value in values.items():
                text = str(value).lower() if isinstance(value, bool) else str(value)
                env[f"PRODCAT_{section.upper()}_{name.upper()}"] = text
        env["PYTHONUNBUFFERED"] = "1"
        return env


class WorkerThread:
    """A ClassifyWorker running in a background thread of the test process."""

    def __init__(self, settings: Settings, instance: str = "t") -> None:
        self.worker = open_worker(settings, instance=instance)
        self.error: BaseException | None = None
        self.worker.start()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.worker.run()
        except BaseException as exc:  # surfaced by stop()
            self.error = exc

    def stop(self) -> None:
        self.worker.stop()
        self.thread.join(30)
        assert not self.thread.is_alive(), "worker thread did not stop"
        if self.error is not None:
            raise self.error


@contextmanager
def running_worker(settings: Settings, instance: str = "t") -> Iterator[WorkerThread]:
    w = WorkerThread(settings, instance)
    try:
        yield w
    finally:
        w.stop()


class WorkerProcess:
    """``python -m workers.cli classify`` as a subprocess, logs to a file."""

    def __init__(self, setup: Setup, log_path: Path, *args: str) -> None:
        self.log_path = log_path
        self._log = log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "workers.cli", "classify", *args],
            cwd=REPO,
            env=setup.env(),
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout_s: float = 60.0) -> int:
        try:
            return self.proc.wait(timeout_s)
        finally:
            self._log.close()

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.wait(30)
