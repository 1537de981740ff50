"""Replaying catalog products as events: the demo's input side, and ``--producer-only``.

:func:`replay_rows` sends rows as ``product.created`` / ``product.updated`` events at a
steady rate; the demo (:mod:`workers.demo.run`) feeds its own topics with it.
``prodcat demo --producer-only`` (:func:`produce_only`) is the same replay into the
*configured* input topics, for workers that already run elsewhere, e.g. the classify
service of ``docker-compose.yml``: no sandbox, no worker, no live view, nothing removed.
"""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from confluent_kafka import Producer

from workers.core.codec import Codec
from workers.core.errors import ProdcatError
from workers.core.settings import Settings
from workers.demo.data import Row, held_out_rows, replay_event
from workers.kafka.clients import admin_config, writer_config
from workers.kafka.topics import ensure_topics, topic_specs
from workers.process.connectivity import check_kafka

__all__ = ["produce_only", "replay_rows"]

UPDATED_SHARE = 5
"""One product in this many is sent again, unchanged, as ``product.updated``."""


def replay_rows(
    producer: Producer,
    topic: str,
    rows: Sequence[Row],
    event_type: str,
    *,
    rate: float,
    codec: Codec,
    stop: threading.Event,
    sent: Callable[[], None] | None = None,
) -> int:
    """Send ``rows`` to ``topic`` as fresh ``event_type`` events (keyed by product id) at
    ``rate`` per second; returns how many were sent. ``stop`` ends it early (what is still
    queued is dropped); ``sent()`` is called after each one."""
    start = time.monotonic()
    for n, row in enumerate(rows):
        if stop.is_set():
            producer.purge()  # stopping: drop what is queued, quietly
            producer.flush(0)
            return n
        producer.produce(topic, codec.encode(replay_event(row, event_type)), row.product_id)
        if sent is not None:
            sent()
        producer.poll(0)
        delay = start + (n + 1) / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    producer.flush(10)
    return len(rows)


def produce_only(args: argparse.Namespace, settings: Settings, bundle: Path) -> int:
    """``prodcat demo --producer-only``: held-out products of ``bundle`` (the served
    model's, so the workers never trained on them) into the configured input topics
    (created if missing), then a fifth of them again as updates."""
    if args.rate <= 0 or args.count < 1 or (args.duration is not None and args.duration <= 0):
        raise ProdcatError("prodcat demo: --rate, --count and --duration must be positive")
    check_kafka(settings, 30.0)
    count = int(args.rate * args.duration) if args.duration else args.count
    print(f"picking {count} products {bundle.name} never saw in training…", flush=True)
    rows = held_out_rows(settings, bundle, count)
    topics = settings.topics
    inputs = {topics.product_created, topics.product_updated}
    ensure_topics(
        admin_config(settings.kafka), [s for s in topic_specs(settings) if s.name in inputs]
    )
    codec = Codec(settings.classify.max_payload_bytes)
    producer = Producer(writer_config(settings.kafka, "demo-producer", linger_ms=5))
    stop = threading.Event()
    again = rows[: max(1, len(rows) // UPDATED_SHARE)]
    print(f"sending {len(rows)} to {topics.product_created} at {args.rate:g}/s…", flush=True)
    created = replay_rows(
        producer,
        topics.product_created,
        rows,
        "product.created",
        rate=args.rate,
        codec=codec,
        stop=stop,
    )
    print(f"sending {len(again)} again, unchanged, to {topics.product_updated}…", flush=True)
    updated = replay_rows(
        producer,
        topics.product_updated,
        again,
        "product.updated",
        rate=args.rate,
        codec=codec,
        stop=stop,
    )
    if producer.flush(30) > 0:
        raise ProdcatError("--producer-only: Kafka did not acknowledge every event in 30 s")
    print(f"sent {created} product.created and {updated} product.updated events")
    return 0
