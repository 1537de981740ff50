"""The two comparison workers of :mod:`bench.classify_bench`, each run as its own process.

``python -m bench.baselines passthrough`` is the ceiling: the classify worker's Kafka
clients (same consumer and producer configuration, same batch size), JSON decode and
validation of each event, and one encoded categorized event produced per input with a
fixed answer; no model, no Redis, no offset tracking.

``python -m bench.baselines faust`` is the straightforward faust-streaming agent: one
event at a time, decode, ``Classifier.classify([item])``, encode, ``await topic.send``.

Both read the topic names and the bundle from the same ``PRODCAT_*`` environment as
``prodcat classify`` and run until SIGTERM.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition

from workers.core.codec import Codec
from workers.core.events import CategorizedEvent, derive_event_id
from workers.core.product import ProductText
from workers.core.settings import load_settings
from workers.inference.model import Classifier
from workers.inference.taxonomy import Decision
from workers.kafka.clients import consumer_config, producer_config


def _event(product: Any, decision: Decision | None, version: str, h: str) -> CategorizedEvent:
    path = list(decision.path) if decision else ["Passthrough"]
    return CategorizedEvent(
        event_type="product.categorized",
        event_id=derive_event_id("product.categorized", product.event_id, version),
        product_id=product.product_id,
        category_id=decision.category_id if decision else "passthrough",
        category_path=path,
        confidence=min(1.0, decision.confidence) if decision else 1.0,
        alternatives=[],
        abstained=decision.abstained if decision else False,
        needs_review=decision.needs_review if decision else False,
        model_version=version,
        source="model",
        causation_id=product.event_id,
        input_hash=h,
        event_time=product.occurred_at,
        classified_at=datetime.now(UTC),
    )


def passthrough() -> int:
    settings = load_settings()
    codec = Codec(settings.classify.max_payload_bytes)
    consumer = Consumer(consumer_config(settings, "passthrough"))
    producer = Producer(producer_config(settings, "passthrough"))
    topics = settings.topics
    consumer.subscribe([topics.product_created, topics.product_updated])
    stop = False

    def on_term(*_: Any) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    out = topics.categorized
    batch_max = settings.classify.batch_max
    timeout = settings.classify.batch_timeout_ms / 1000
    last_commit = time.monotonic()
    positions: dict[tuple[str, int], int] = {}
    fake_hash = "0" * 32
    while not stop:
        messages: list[Any] = consumer.consume(batch_max, timeout)
        producer.poll(0)
        for m in messages:
            if m.error() is not None:
                continue
            try:
                event = codec.decode_product(m.value())
            except Exception:
                continue
            value = codec.encode(_event(event, None, "passthrough", fake_hash))
            while True:
                try:
                    producer.produce(out, value, m.key())
                    break
                except BufferError:
                    producer.poll(0.05)
            positions[(m.topic(), m.partition())] = m.offset() + 1
        if time.monotonic() - last_commit > 0.5 and positions:
            producer.flush(5)
            consumer.commit(
                offsets=[TopicPartition(t, p, o) for (t, p), o in positions.items()],
                asynchronous=True,
            )
            last_commit = time.monotonic()
    producer.flush(10)
    consumer.close()
    return 0


def faust_agent() -> int:
    import faust

    settings = load_settings()
    if settings.model.bundle is None:
        raise SystemExit("PRODCAT_MODEL_BUNDLE is not set")
    classifier = Classifier.from_path(settings.model.bundle, top_k=settings.model.top_k)
    classifier.warm_up()
    codec = Codec(settings.classify.max_payload_bytes)
    topics = settings.topics
    app = faust.App(
        f"{settings.classify.group_id}-faust",
        broker=f"kafka://{settings.kafka.bootstrap}",
        store="memory://",
        datadir=str(Path(__file__).resolve().parent / "results" / "faust-data"),
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
        topic_disable_leader=True,
        producer_acks=-1,
    )
    src = app.topic(topics.product_created, key_serializer="raw", value_serializer="raw")
    dst = app.topic(topics.categorized, key_serializer="raw", value_serializer="raw")
    version = classifier.version
    featurizer = classifier.featurizer

    @app.agent(src)
    async def classify(stream: Any) -> None:
        async for value in stream:
            try:
                event = codec.decode_product(value)
            except Exception:
                continue
            item = ProductText.of(event)
            (decision,) = classifier.classify([item])
            out = _event(event, decision, version, featurizer.content_hash(item))
            await dst.send(key=event.product_id.encode(), value=codec.encode(out))

    async def main() -> None:
        done = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, done.set)
        await app.start()
        try:
            await done.wait()
        finally:
            await app.stop()

    asyncio.run(main())
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    mode = sys.argv[1] if len(sys.argv) > 1 else ""
    if mode == "passthrough":
        raise SystemExit(passthrough())
    if mode == "faust":
        raise SystemExit(faust_agent())
    raise SystemExit("usage: python -m bench.baselines passthrough|faust")
