"""Feedback-to-override latency of ``prodcat feedback`` on the local broker.

    python -m bench.feedback_latency --bundle var/bundles/<version> [--corrections 300]

Starts ``prodcat feedback`` as a subprocess on fresh topics (6 partitions), a fresh
consumer group and Redis namespace, feeds it real catalog products (bigbasket) and their
predictions, then sends moderator corrections one at a time. For each correction it
measures, from just before the feedback event is produced:

* ``redis``: until ``{prefix}:override:{product_id}`` holds the corrected path (polled
  every 0.5 ms) -- the moment the classify worker would answer with it;
* ``event``: until the corrected ``product.categorized`` event (``source: override``) is
  read back from the broker by a consumer;
* ``both``: the later of the two: the override is in effect everywhere.

One correction at a time, so the figures are latency without queueing. The app's own
``prodcat_feedback_override_latency_seconds`` histogram (feedback ``occurred_at`` to the
broker's acknowledgement) is printed beside it. Everything it created is deleted at the end.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from datetime import UTC, datetime
from typing import Any

import msgspec
import redis
from confluent_kafka import Consumer, Producer, TopicPartition

from bench.common import (
    CODEC,
    PARTITIONS,
    REPO,
    RESULTS,
    add_service_args,
    delete_keys,
    kafka,
    percentile,
    row_event,
    sandbox,
    worker_env,
)
from export.data.datasets import load_dataset
from workers.core.events import CategorizedEvent, FeedbackEvent, derive_event_id
from workers.core.overrides import decode_override, override_key
from workers.inference.bundle import load_bundle
from workers.kafka.clients import reader_config, writer_config

CATEGORIZED = msgspec.json.Decoder(CategorizedEvent)


def _metric(port: int, name: str, **labels: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


def _wait(predicate: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"timed out after {timeout_s:.0f} s waiting for {what}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_service_args(parser)
    parser.add_argument("--corrections", type=int, default=300)
    args = parser.parse_args()

    leaves = list(load_bundle(args.bundle).taxonomy.leaves)
    rows, _ = load_dataset("bigbasket", args.data_dir, limit=args.corrections)
    tag = uuid.uuid4().hex[:10]
    box = sandbox(args.bootstrap, "feedback")
    kinds = ("product_created", "product_updated", "categorized", "feedback", "labels")
    names = {key: box.new(PARTITIONS, name=key) for key in (*kinds, "dead_letter")}
    app_id = f"prodcat-feedback-bench-{tag}"
    prefix = f"prodcat-bench:{tag}"
    port = 19000 + int(tag[:4], 16) % 1000
    state_dir = tempfile.mkdtemp(prefix="prodcat-feedback-bench-")
    env = worker_env(args, names, prefix)
    env.update(
        {
            "PRODCAT_METRICS_PORT": str(port),
            "PRODCAT_FEEDBACK_APP_ID": app_id,
            "PRODCAT_FEEDBACK_STATE_DIR": state_dir,
            "PRODCAT_LOG_LEVEL": "WARNING",
        }
    )
    log_path = RESULTS / "feedback-latency.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    client = redis.Redis.from_url(args.redis_url)
    producer = Producer(writer_config(kafka(args.bootstrap), "bench-feedback"))
    consumer = Consumer(
        reader_config(kafka(args.bootstrap), "bench-feedback", **{"fetch.wait.max.ms": 5})
    )
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "workers.cli", "feedback"],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            now = datetime.now(UTC)
            for i, r in enumerate(rows):
                product = row_event(r, tag, i, now)
                shown = leaves[i % len(leaves)]
                predicted = CategorizedEvent(
                    event_type="product.categorized",
                    event_id=f"c-{i}",
                    product_id=product.product_id,
                    category_id=derive_event_id(*shown)[:16],
                    category_path=list(shown),
                    confidence=0.8,
                    alternatives=[],
                    abstained=False,
                    needs_review=False,
                    model_version="bench",
                    source="model",
                    causation_id=product.event_id,
                    input_hash="0123456789abcdef",
                    event_time=now,
                    classified_at=now,
                )
                key = product.product_id.encode()
                producer.produce(names["product_created"], CODEC.encode(product), key)
                producer.produce(names["categorized"], CODEC.encode(predicted), key)
            producer.flush(30)
            _wait(
                lambda: (
                    _metric(port, "prodcat_feedback_consumed_total", topic=names["categorized"])
                    >= len(rows)
                ),
                120,
                "the app to read the products",
            )
            meta = consumer.list_topics(names["categorized"], timeout=10).topics[
                names["categorized"]
            ]
            consumer.assign(
                [
                    TopicPartition(
                        names["categorized"],
                        p,
                        consumer.get_watermark_offsets(
                            TopicPartition(names["categorized"], p), timeout=10
                        )[1],
                    )
                    for p in meta.partitions
                ]
            )
            consumer.consume(100, 1.0)  # join the partitions before the clock starts
            to_redis: list[float] = []
            to_event: list[float] = []
            both: list[float] = []
            for i in range(len(rows)):
                product_id = f"{tag}-{i}"  # as product_event named it
                shown = leaves[i % len(leaves)]
                right = leaves[(i + 1) % len(leaves)]
                event = FeedbackEvent(
                    event_type="category.feedback",
                    event_id=f"fb-{tag}-{i}",
                    product_id=product_id,
                    action="correct",
                    category_path=list(right),
                    rejected_category_path=list(shown),
                    source="moderator",
                    actor_id="bench",
                    occurred_at=datetime.now(UTC),
                )
                start = time.perf_counter()
                producer.produce(names["feedback"], CODEC.encode(event), product_id.encode())
                producer.flush(10)
                redis_at = event_at = None
                rkey = override_key(prefix, product_id)
                deadline = start + 30
                while (redis_at is None or event_at is None) and time.perf_counter() < deadline:
                    if redis_at is None:
                        raw = client.get(rkey)
                        found = decode_override(raw) if raw else None
                        if found is not None and found.path == right:
                            redis_at = time.perf_counter()
                    if event_at is None:
                        for m in consumer.consume(100, 0.0005):
                            if (
                                m.error() is None
                                and CATEGORIZED.decode(m.value()).causation_id == event.event_id
                            ):
                                event_at = time.perf_counter()
                    if redis_at is None:
                        time.sleep(0.0005)
                if redis_at is None or event_at is None:
                    raise SystemExit(f"correction {i} not in effect after 30 s (see {log_path})")
                to_redis.append(redis_at - start)
                to_event.append(event_at - start)
                both.append(max(redis_at, event_at) - start)
            app_sum = _metric(port, "prodcat_feedback_override_latency_seconds_sum")
            app_count = _metric(port, "prodcat_feedback_override_latency_seconds_count")
        finally:
            proc.terminate()
            code = proc.wait(60)
            consumer.close()
            box.delete_all(also_prefixed=[f"{app_id}-"])  # and the app's changelogs
            shutil.rmtree(state_dir, ignore_errors=True)
            delete_keys(args.redis_url, f"{prefix}:*")
    print(
        f"feedback-to-override latency, {len(both)} moderator corrections one at a time, "
        f"{PARTITIONS} partitions, local broker (ms):"
    )
    print("| measured to | p50 | p90 | p99 | max | mean |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, values in (
        ("override in Redis", to_redis),
        ("corrected event read back", to_event),
        ("both", both),
    ):
        ms = [v * 1000 for v in values]
        print(
            f"| {name} | {percentile(ms, 0.5):.1f} | {percentile(ms, 0.9):.1f} | "
            f"{percentile(ms, 0.99):.1f} | {max(ms):.1f} | {statistics.fmean(ms):.1f} |"
        )
    if app_count:
        print(
            f"app histogram (occurred_at to broker ack): mean {1000 * app_sum / app_count:.1f} ms "
            f"over {app_count:.0f}"
        )
    print(f"prodcat feedback exited with {code} on SIGTERM")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
