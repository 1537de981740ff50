"""What the benchmarks share: real rows and payloads, throwaway topics, clients, workers' env.

Every benchmark runs against the local stack (``deploy/local/stack up``) with topics
(:class:`workers.kafka.sandbox.TopicSandbox`), consumer groups and Redis keys of its own,
deleted at the end: the broker and Redis are shared with everyone else on the machine.
"""

from __future__ import annotations

import argparse
import os
import random
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import redis
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from export.data.catalog import Example
from export.data.datasets import load_dataset
from workers.core.codec import Codec
from workers.core.events import ProductEvent, product_event
from workers.core.settings import KafkaSettings
from workers.kafka.clients import reader_config, writer_config
from workers.kafka.sandbox import TopicSandbox

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
DATASETS = (
    "bigbasket",
    "amazon_in_2023",
    "myntra_styles",
    "implicitave_amazon",
    "cn_ecommerce_products",
)
PARTITIONS = 6
CODEC = Codec(1 << 20)
RUN_ID = uuid.uuid4().hex[:8]
"""Names every topic and Redis key of this run, so the clean-up finds them all."""

INPUT_TOPICS = ("product_created", "product_updated", "categorized", "review", "dead_letter")


class _Times(msgspec.Struct):
    event_time: datetime


_TIMES = msgspec.json.Decoder(_Times)


# --------------------------------------------------------------------------- data


def distinct_rows(data_dir: Path) -> list[Example]:
    """Every distinct product text of the five catalogs, in a seeded random order.

    Shuffled so that any slice has the mix of the whole (about a third Chinese titles):
    a throughput run and a latency run then measure the same kind of text, whichever
    slice each takes."""
    seen: set[tuple[Any, ...]] = set()
    rows: list[Example] = []
    for name in DATASETS:
        for e in load_dataset(name, data_dir)[0]:
            key = (e.title, e.brand, e.description, tuple(sorted(e.attributes.items())))
            if key not in seen:
                seen.add(key)
                rows.append(e)
    random.Random(0).shuffle(rows)
    return rows


def row_event(e: Example, tag: str, i: int, when: datetime | None = None) -> ProductEvent:
    """A ``product.created`` event of row ``e``, ids ``{tag}-{i}``."""
    pid = f"{tag}-{i}"
    return product_event(e, product_id=pid, event_id=pid, occurred_at=when or datetime.now(UTC))


def payload(e: Example, tag: str, i: int, when: datetime | None = None) -> tuple[bytes, bytes]:
    """(key, value) of :func:`product_event`, encoded."""
    event = row_event(e, tag, i, when)
    return event.product_id.encode(), CODEC.encode(event)


def percentile(values: list[float], q: float) -> float:
    """The ``q`` (0..1) quantile by rank: the value below which a share ``q`` of them lie."""
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] if s else 0.0


# --------------------------------------------------------------------------- kafka


def kafka(bootstrap: str) -> KafkaSettings:
    return KafkaSettings(bootstrap=bootstrap)


def sandbox(bootstrap: str, name: str) -> TopicSandbox:
    """Throwaway topics ``bench.{RUN_ID}.{name}.*``."""
    return TopicSandbox(kafka(bootstrap), f"bench.{RUN_ID}.{name}", timeout_s=30.0)


def make_topics(
    topics: TopicSandbox, tag: str, *, partitions: int = PARTITIONS, control: bool = False
) -> dict[str, str]:
    """A classify worker's topics (``PRODCAT_TOPICS_*`` names -> topic), with broker
    append times (``LogAppendTime``) to measure by; ``control`` adds a control topic."""
    config = {"message.timestamp.type": "LogAppendTime"}
    names = {k: topics.new(partitions, name=f"{tag}.{k}", config=config) for k in INPUT_TOPICS}
    if control:
        names["models"] = topics.new(1, name=f"{tag}.models")
    return names


def producer(bootstrap: str, **extra: Any) -> Producer:
    """An event producer as a catalog service would run one (5 ms linger)."""
    conf = {"queue.buffering.max.messages": 500_000, **extra}
    return Producer(writer_config(kafka(bootstrap), "bench", linger_ms=5, **conf))


def preload(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    p = producer(bootstrap)
    for key, value in records:
        while True:
            try:
                p.produce(topic, value, key)
                break
            except BufferError:
                p.poll(0.05)
    p.flush(60)


def output_count(bootstrap: str, topic: str, partitions: int = PARTITIONS) -> int:
    """Messages on ``topic`` so far (the sum of its high watermarks)."""
    c = Consumer(reader_config(kafka(bootstrap), "bench-count"))
    try:
        return sum(
            c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in range(partitions)
        )
    finally:
        c.close()


def wait_outputs(bootstrap: str, topic: str, n: int, timeout_s: float, poll_s: float = 0.5) -> None:
    deadline = time.monotonic() + timeout_s
    while output_count(bootstrap, topic) < n:
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {n} outputs on {topic}")
        time.sleep(poll_s)


def read_times(bootstrap: str, topic: str, n: int) -> list[tuple[int, int]]:
    """(broker append ms, event_time ms) of every output."""
    c = Consumer(reader_config(kafka(bootstrap), "bench-read"))
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
    out: list[tuple[int, int]] = []
    deadline = time.monotonic() + 120
    while len(out) < n and time.monotonic() < deadline:
        for m in c.consume(5000, 0.5):
            value = m.value()
            if m.error() is None and value is not None:
                t = _TIMES.decode(value).event_time
                out.append((m.timestamp()[1], int(t.timestamp() * 1000)))
    c.close()
    return out


def throughput(times: list[tuple[int, int]]) -> float:
    """Events/s between the 1st and the 99th percentile of the broker append times."""
    ts = sorted(t for t, _ in times)
    lo, hi = ts[len(ts) // 100], ts[len(ts) * 99 // 100 - 1]
    return (len(ts) * 0.98) / max((hi - lo) / 1000.0, 1e-3)


# --------------------------------------------------------------------------- workers


def add_service_args(ap: argparse.ArgumentParser, *, bundle: bool = True) -> None:
    """``--bundle``, ``--data-dir``, ``--bootstrap`` and ``--redis-url``, as every Kafka
    benchmark here takes them (the services default to the local stack's, or the env's)."""
    if bundle:
        ap.add_argument("--bundle", type=Path, required=True, help="model bundle directory")
    ap.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument(
        "--bootstrap", default=os.environ.get("PRODCAT_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    )
    ap.add_argument(
        "--redis-url", default=os.environ.get("PRODCAT_REDIS_URL", "redis://127.0.0.1:6379/0")
    )


def worker_env(args: argparse.Namespace, topics: dict[str, str], prefix: str) -> dict[str, str]:
    """The environment of a worker process on ``topics`` with Redis key prefix ``prefix``
    (``--worker-env KEY=VALUE`` adds to it)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRODCAT_")}
    env.update({f"PRODCAT_TOPICS_{k.upper()}": v for k, v in topics.items()})
    env.update(
        {
            "PRODCAT_KAFKA_BOOTSTRAP": args.bootstrap,
            "PRODCAT_KAFKA_PARTITIONS": str(PARTITIONS),
            "PRODCAT_REDIS_URL": args.redis_url,
            "PRODCAT_REDIS_KEY_PREFIX": prefix,
            "PRODCAT_MODEL_BUNDLE": str(args.bundle),
            "PRODCAT_METRICS_PORT": "0",
            "PRODCAT_CLASSIFY_GROUP_ID": f"bench-{uuid.uuid4().hex[:8]}",
            "PRODCAT_LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
        }
    )
    for item in getattr(args, "worker_env", []):  # e.g. PRODCAT_CLASSIFY_BATCH_MAX=2000
        key, _, value = item.partition("=")
        env[key] = value
    return env


def delete_keys(redis_url: str, pattern: str) -> None:
    """Unlink every Redis key matching ``pattern`` (e.g. ``prodcat-bench:<run>*``)."""
    client = redis.Redis.from_url(redis_url)
    batch: list[bytes] = []
    for key in client.scan_iter(match=pattern, count=5000):
        batch.append(key)
        if len(batch) >= 5000:
            client.unlink(*batch)
            batch.clear()
    if batch:
        client.unlink(*batch)
    client.close()
