"""``prodcat demo``: the whole loop on real catalog data, in one command.

1. checks Kafka and Redis (``deploy/local/demo`` starts the local stack first);
2. uses ``--bundle`` or trains a small bundle on English and Chinese catalogs
   (cached under ``var/demo`` for the next run);
3. starts a classify worker process on demo-only topics;
4. replays real held-out products (never seen in training) at ``--rate``;
5. shows a live view: events/s, lag, p99 latency, cache hit ratio and a
   scrolling sample of products with their categories;
6. replays some products unchanged (answered from the cache) and applies a few
   scripted corrections as overrides, so the override path is visible;
7. prints a summary, stops the worker (SIGTERM, drain) and deletes its topics
   and Redis keys, leaving nothing running.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import numpy as np
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient

from workers.cache import override_key
from workers.connectivity import check_kafka, check_redis
from workers.errors import ProdcatError
from workers.events import CategorizedEvent, Codec, ProductEvent
from workers.settings import Settings
from workers.taxonomy import format_path

DEMO_DATASETS = ("bigbasket", "cn_ecommerce_products")


@dataclass
class Row:
    product_id: str
    title: str
    brand: str
    attributes: dict[str, str]
    path: tuple[str, ...]


@dataclass
class Stats:
    sent: int = 0
    received: int = 0
    reviewed: int = 0
    agree: int = 0
    judged: int = 0
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=5000))
    arrivals: deque[float] = field(default_factory=lambda: deque(maxlen=100000))
    sources: Counter[str] = field(default_factory=Counter)
    sample: deque[str] = field(default_factory=lambda: deque(maxlen=12))
    lock: threading.Lock = field(default_factory=threading.Lock)


def held_out_rows(settings: Settings, datasets: tuple[str, ...], per_dataset: int) -> list[Row]:
    """Test-split rows (grouped by title, seed 0) of each catalog, interleaved."""
    from export.datasets import load_dataset
    from export.splits import deduplicate, grouped_split

    lists: list[list[Row]] = []
    for name in datasets:
        examples, _ = load_dataset(name, settings.data_dir)
        examples, _ = deduplicate(examples)
        split = grouped_split(examples, seed=0)
        rng = random.Random(7)
        picked = rng.sample(list(split.test), min(per_dataset, len(split.test)))
        lists.append(
            [
                Row(
                    f"{name}-{examples[i].product_id}",
                    examples[i].title,
                    examples[i].brand,
                    dict(examples[i].attributes),
                    examples[i].path,
                )
                for i in picked
            ]
        )
    return [row for group in zip(*lists, strict=False) for row in group]


def ensure_bundle(settings: Settings, args: argparse.Namespace) -> Path:
    if args.bundle:
        return Path(args.bundle)
    root = Path("var/demo/bundles")
    version = f"demo-{'-'.join(args.datasets)}-{args.train_rows}"
    if (root / version / "manifest.json").is_file():
        print(f"using the demo bundle trained earlier: {root / version}")
        return root / version
    print(f"training a demo bundle on {', '.join(args.datasets)} ({args.train_rows} rows each)…")
    from export.train import TrainConfig, run

    config = TrainConfig(
        data=tuple(args.datasets),
        data_dir=settings.data_dir,
        out=root,
        candidates=("fasttext",),
        limit=args.train_rows,
        max_epochs=8,
        baseline=False,
        version=version,
        verbose=1 if sys.stdout.isatty() else 2,
    )
    return run(config)


def _env(settings: Settings, run_id: str, bundle: Path, port: int) -> dict[str, str]:
    t = f"demo-{run_id}"
    return {
        **os.environ,
        "PRODCAT_KAFKA_BOOTSTRAP": settings.kafka.bootstrap,
        "PRODCAT_REDIS_URL": settings.redis.url,
        "PRODCAT_REDIS_KEY_PREFIX": f"prodcat-{t}",
        "PRODCAT_TOPICS_PRODUCT_CREATED": f"{t}.product.created",
        "PRODCAT_TOPICS_PRODUCT_UPDATED": f"{t}.product.updated",
        "PRODCAT_TOPICS_CATEGORIZED": f"{t}.product.categorized",
        "PRODCAT_TOPICS_REVIEW": f"{t}.product.review",
        "PRODCAT_TOPICS_DEAD_LETTER": f"{t}.dead-letter",
        "PRODCAT_CLASSIFY_GROUP_ID": f"{t}-classify",
        "PRODCAT_MODEL_BUNDLE": str(bundle),
        "PRODCAT_METRICS_PORT": str(port),
        "PRODCAT_LOG_LEVEL": "WARNING",
    }


def _event(row: Row, event_type: str) -> ProductEvent:
    return ProductEvent(
        event_type=event_type,  # type: ignore[arg-type]
        event_id=uuid.uuid4().hex,
        product_id=row.product_id,
        title=row.title,
        brand=row.brand,
        attributes=row.attributes,
        occurred_at=datetime.now(UTC),
    )


class Demo:
    def __init__(self, settings: Settings, args: argparse.Namespace) -> None:
        self.settings = settings
        self.args = args
        self.run_id = uuid.uuid4().hex[:8]
        self.codec = Codec(settings.classify.max_payload_bytes)
        self.stats = Stats()
        self.rows_by_id: dict[str, Row] = {}
        self.overrides: dict[str, tuple[str, ...]] = {}
        self.stop = threading.Event()
        self.env: dict[str, str] = {}

    # -------------------------------------------------------------- output side
    def watch(self) -> None:
        conf = {
            **self.settings.kafka.librdkafka(),
            "group.id": f"demo-{self.run_id}-watch",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
        consumer = Consumer(conf)
        consumer.subscribe([self.env["PRODCAT_TOPICS_CATEGORIZED"]])
        try:
            while not self.stop.is_set():
                for msg in consumer.consume(500, 0.2):
                    if msg.error() is None:
                        self._record(self.codec.decode(msg.value(), CategorizedEvent))
        finally:
            consumer.close()

    def _record(self, ev: CategorizedEvent) -> None:
        now = datetime.now(UTC)
        row = self.rows_by_id.get(ev.product_id)
        with self.stats.lock:
            s = self.stats
            s.received += 1
            s.arrivals.append(time.monotonic())
            s.sources[ev.source] += 1
            s.reviewed += ev.needs_review
            s.latencies_ms.append((now - ev.event_time).total_seconds() * 1000)
            if row is not None and ev.source != "override":
                s.judged += 1
                s.agree += tuple(ev.category_path) == row.path[: len(ev.category_path)]
            title = row.title[:48] if row else ev.product_id
            flag = " [review]" if ev.needs_review else ""
            s.sample.append(
                f"{ev.source:8s} {ev.confidence:5.2f}  {title:<50s} → "
                f"{format_path(ev.category_path)}{flag}"
            )

    # --------------------------------------------------------------- input side
    def replay(self, producer: Producer, rows: list[Row], event_type: str, rate: float) -> None:
        topic = self.env[
            "PRODCAT_TOPICS_PRODUCT_CREATED"
            if event_type == "product.created"
            else "PRODCAT_TOPICS_PRODUCT_UPDATED"
        ]
        start = time.monotonic()
        for n, row in enumerate(rows):
            if self.stop.is_set():
                return
            producer.produce(topic, self.codec.encode(_event(row, event_type)), row.product_id)
            with self.stats.lock:
                self.stats.sent += 1
            producer.poll(0)
            delay = start + (n + 1) / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        producer.flush(10)

    def correct(self, producer: Producer, rows: list[Row]) -> None:
        """Scripted corrections: a moderator's answer becomes an override in Redis (as the
        feedback app writes it); the product's next event is answered with it."""
        import redis

        client = redis.Redis.from_url(self.settings.redis.url)
        prefix = self.env["PRODCAT_REDIS_KEY_PREFIX"]
        for row in rows:
            value = {"category_path": list(row.path), "source": "moderator"}
            client.set(override_key(prefix, row.product_id), msgspec.json.encode(value))
            self.overrides[row.product_id] = row.path
        client.close()
        self.replay(producer, rows, "product.updated", self.args.rate)

    # ------------------------------------------------------------------- view
    def render(self, phase: str, final: bool = False) -> str:
        with self.stats.lock:
            s = self.stats
            now = time.monotonic()
            recent = sum(1 for t in s.arrivals if t > now - 5.0)
            lat = np.array(s.latencies_ms) if s.latencies_ms else np.zeros(1)
            hits = s.sources["cache"]
            answered = sum(s.sources.values())
            lines = [
                f"prodcat demo  run {self.run_id}  phase: {phase}",
                f"sent {s.sent:6d}  categorized {s.received:6d}  lag {s.sent - s.received:5d}"
                f"  {recent / 5.0:7.0f} events/s (last 5 s)",
                f"latency p50 {np.percentile(lat, 50):6.1f} ms"
                f"  p99 {np.percentile(lat, 99):6.1f} ms"
                f"  cache hit ratio {hits / max(answered, 1):5.1%}"
                f"  needs review {s.reviewed / max(s.received, 1):5.1%}",
                f"sources {dict(s.sources)}  agreement with catalog labels "
                f"{s.agree / max(s.judged, 1):5.1%} of {s.judged}",
                "",
                *s.sample,
            ]
        if final:
            return "\n".join(lines[:4])
        return "\n".join(lines)

    def show(self, phase: str) -> None:
        text = self.render(phase)
        if sys.stdout.isatty():
            sys.stdout.write("\x1b[H\x1b[2J" + text + "\n")
        else:
            sys.stdout.write(text + "\n\n")
        sys.stdout.flush()

    def wait_for(self, expected: int, phase: str, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.show(phase)
            with self.stats.lock:
                if self.stats.received >= expected:
                    return
            time.sleep(1)
        raise ProdcatError(f"only {self.stats.received} of {expected} outputs arrived in time")

    # ---------------------------------------------------------------- cleanup
    def cleanup(self) -> None:
        topics = [v for k, v in self.env.items() if k.startswith("PRODCAT_TOPICS_")]
        admin = AdminClient(self.settings.kafka.librdkafka())
        for fut in admin.delete_topics(topics, operation_timeout=10).values():
            with contextlib.suppress(Exception):
                fut.result()
        import redis

        client = redis.Redis.from_url(self.settings.redis.url)
        prefix = self.env.get("PRODCAT_REDIS_KEY_PREFIX", "")
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000)) if prefix else []
        if keys:
            client.delete(*keys)
        client.close()


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(port: int, worker: subprocess.Popen[bytes], timeout_s: float = 60) -> None:
    """Block until the worker's /readyz answers 200 (partitions assigned, model loaded)."""
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise ProdcatError(f"the classify worker exited with {worker.returncode} at start-up")
        url = f"http://127.0.0.1:{port}/readyz"
        with (
            contextlib.suppress(urllib.error.URLError, OSError),
            urllib.request.urlopen(url, timeout=1) as resp,
        ):
            if resp.status == 200:
                return
        time.sleep(0.3)
    raise ProdcatError(f"the classify worker was not ready after {timeout_s:.0f} s")


def run_demo(args: argparse.Namespace, settings: Settings) -> int:
    check_kafka(settings, 10.0)
    check_redis(settings, 5.0)
    bundle = ensure_bundle(settings, args)
    demo = Demo(settings, args)
    demo.env = _env(settings, demo.run_id, bundle, _free_port())
    rows = held_out_rows(settings, tuple(args.datasets), args.count // len(args.datasets))
    demo.rows_by_id = {r.product_id: r for r in rows}
    worker = subprocess.Popen([sys.executable, "-m", "workers.cli", "classify"], env=demo.env)
    wait_ready(int(demo.env["PRODCAT_METRICS_PORT"]), worker)
    watcher = threading.Thread(target=demo.watch, daemon=True)
    producer = Producer({**settings.kafka.librdkafka(), "linger.ms": 5})
    code = 1
    try:
        watcher.start()
        feeder = threading.Thread(
            target=demo.replay, args=(producer, rows, "product.created", args.rate), daemon=True
        )
        feeder.start()
        demo.wait_for(len(rows), "replaying new products", timeout_s=120 + len(rows) / args.rate)
        again = rows[: max(1, len(rows) // 5)]
        demo.replay(producer, again, "product.updated", args.rate)
        demo.wait_for(len(rows) + len(again), "replaying unchanged updates (cache)")
        fixes = list(rows[len(again) : len(again) + 3])
        demo.correct(producer, fixes)
        demo.wait_for(len(rows) + len(again) + len(fixes), "moderator corrections (override)")
        demo.show("done")
        print("\nsummary")
        print(demo.render("done", final=True))
        for r in fixes:
            print(f"  corrected {r.product_id}: {format_path(r.path)}")
        code = 0
    finally:
        demo.stop.set()
        worker.send_signal(signal.SIGTERM)
        try:
            rc = worker.wait(timeout=settings.classify.drain_timeout_s + 10)
        except subprocess.TimeoutExpired:
            worker.kill()
            rc = -9
        watcher.join(timeout=5)
        demo.cleanup()
        print(f"classify worker drained and exited with {rc}; demo topics and keys removed")
    return code
