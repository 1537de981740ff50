"""Python cost of producing a batch's outputs and handling their delivery reports.

    python -m bench.delivery_bench --bundle DIR [--events 20000] [--repeat 3]

Real catalog rows go through :class:`workers.classify.pipeline.BatchPipeline` once (outside the
timing); then :class:`workers.classify.delivery.OutputSender` produces every outcome (categorized
event plus review copy) with the worker's producer configuration to throwaway topics on
the local broker, tracked in an :class:`workers.kafka.offsets.OffsetTracker`, and serves the
delivery reports until all are acknowledged. Figures are CPU µs per input event of the
calling thread (``time.thread_time``: the ``produce`` calls, the delivery callbacks and
the tracker, not librdkafka's own threads), best of ``--repeat``, so other jobs on the
machine matter less than for wall-clock figures; the process CPU (librdkafka's threads:
batching, compression, network) is printed too. ``--set KEY=VALUE`` overrides a
producer setting (e.g. ``compression.type``, ``linger.ms``) to compare configurations.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime

from confluent_kafka import Producer
from prometheus_client import CollectorRegistry

from bench.common import add_service_args, distinct_rows, payload, sandbox
from workers.classify.delivery import OutputSender
from workers.classify.metrics import ClassifyMetrics
from workers.classify.pipeline import BatchPipeline
from workers.core.codec import Codec
from workers.core.settings import Settings, TopicSettings
from workers.inference.model import Classifier
from workers.kafka.clients import producer_config
from workers.kafka.offsets import OffsetTracker


class _Consumed:
    """What :meth:`OutputSender.send` reads of a consumed message."""

    __slots__ = ("_offset",)

    def __init__(self, offset: int) -> None:
        self._offset = offset

    def topic(self) -> str:
        return "bench.in"

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    add_service_args(ap)
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a producer setting, e.g. --set compression.type=none",
    )
    args = ap.parse_args()
    overrides = dict(item.split("=", 1) for item in args.set)

    rows = distinct_rows(args.data_dir)[: args.events]
    now = datetime.now(UTC)
    codec = Codec(1 << 20)
    pipe = BatchPipeline(
        Classifier.from_path(args.bundle), codec, ClassifyMetrics(CollectorRegistry())
    )
    payloads = [payload(e, "delivery", i, now)[1] for i, e in enumerate(rows)]
    outcomes = [
        o
        for i in range(0, len(payloads), args.batch)
        for o in pipe.run(payloads[i : i + args.batch])
    ]
    box = sandbox(args.bootstrap, "delivery")
    topics = TopicSettings(categorized=box.new(6, name="out"), review=box.new(6, name="review"))
    settings = Settings().with_overrides(kafka={"bootstrap": args.bootstrap})
    n = len(outcomes)
    reviews = sum(o.review is not None for o in outcomes)
    best = best_process = float("inf")
    try:
        for offset_base in range(args.repeat):
            producer = Producer({**producer_config(settings, "bench"), **overrides})
            tracker = OffsetTracker()
            sender = OutputSender(
                producer, topics, ClassifyMetrics(CollectorRegistry()), tracker, "bench"
            )
            consumed = [_Consumed(offset_base * n + i) for i in range(n)]
            t0, p0 = time.thread_time(), time.process_time()
            for i in range(0, n, args.batch):
                sender.send(consumed[i : i + args.batch], outcomes[i : i + args.batch], track=True)
                producer.poll(0)
            if not sender.flush(time.monotonic() + 60):
                raise SystemExit("outputs not acknowledged within 60 s")
            best = min(best, time.thread_time() - t0)
            best_process = min(best_process, time.process_time() - p0)
            assert tracker.in_flight == 0, tracker.in_flight
            producer.flush(10)
    finally:
        box.delete_all()
    print(
        f"{n} events ({reviews} review copies), batches of {args.batch}, best of {args.repeat}: "
        f"{best * 1e6 / n:.2f} CPU µs/event on the sending thread, "
        f"{best_process * 1e6 / n:.2f} in the process (librdkafka's threads included)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
