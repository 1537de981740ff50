"""Swap pause: the longest gap between batches while a classify worker hot-swaps its model.

    python -m bench.swap_pause --bundle var/bundles/<version> [--rate 4000] [--swaps 4]

On the local broker and Redis, with topics, group, Redis prefix and model store of its own:
publishes the bundle as version A and a re-versioned copy as B, starts one classify worker
(in this process), streams real catalog rows at ``--rate`` events/s, and while the stream
flows alternates the live pointer A -> B -> A ... ``--swaps`` times (``prodcat models
promote``). Every batch start is time-stamped in the worker loop. It prints, for each swap:

* ``window``: the longest gap between two batch starts from the promote command until
  0.5 s after the loop switched (this includes fetching, verifying, loading and warming
  the new model on the follower thread while the loop keeps serving);
* ``at switch``: the gap between the batches on either side of the switch itself;

and, for comparison, the longest and the 99th-percentile gap of the steady stream outside
the swap windows. Finally it checks that every input got exactly one output.
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import tempfile
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from bench.common import (
    CODEC,
    add_service_args,
    delete_keys,
    kafka,
    make_topics,
    percentile,
    producer,
    sandbox,
)
from export.data.datasets import load_dataset
from workers.classify.factory import open_worker
from workers.core.events import CategorizedEvent, ProductEvent
from workers.core.settings import Settings
from workers.inference.bundle import write_manifest
from workers.kafka.clients import reader_config
from workers.lifecycle.admin import ModelAdmin

PARTITIONS = 3


def relabel(src: Path, dst: Path, version: str) -> Path:
    """A copy of the bundle under another version (same weights), re-manifested."""
    shutil.copytree(src, dst)
    for p in dst.rglob("*"):
        if p.is_file():
            p.chmod(0o644)
    meta = json.loads((dst / "metadata.json").read_text())
    meta["version"] = version
    (dst / "metadata.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
    write_manifest(dst)
    return dst


def feed(
    bootstrap: str, topic: str, events: list[ProductEvent], rate: float, done: threading.Event
) -> None:
    p = producer(bootstrap)
    start = time.perf_counter()
    for i, e in enumerate(events):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0.002:
            time.sleep(delay)
        while True:
            try:
                p.produce(topic, CODEC.encode(e), e.product_id.encode())
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
    p.flush(30)
    done.set()


def count_outputs(
    bootstrap: str, topic: str, expect: int, timeout_s: float = 120.0
) -> Counter[str]:
    c = Consumer(reader_config(kafka(bootstrap), "bench-swap"))
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
    decoder = msgspec.json.Decoder(CategorizedEvent)
    seen: Counter[str] = Counter()
    deadline = time.monotonic() + timeout_s
    idle_since = time.monotonic()
    while time.monotonic() < deadline:
        batch = [m for m in c.consume(1000, 0.5) if m.error() is None]
        for m in batch:
            seen[decoder.decode(m.value()).causation_id] += 1
        if batch:
            idle_since = time.monotonic()
        elif sum(seen.values()) >= expect and time.monotonic() - idle_since > 2.0:
            break
    c.close()
    return seen


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    add_service_args(ap)
    ap.add_argument("--dataset", default="bigbasket")
    ap.add_argument("--rate", type=float, default=4000.0, help="events per second")
    ap.add_argument("--swaps", type=int, default=4)
    ap.add_argument("--spacing-s", type=float, default=5.0, help="seconds between swaps")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()

    run = uuid.uuid4().hex[:8]
    work = Path(tempfile.mkdtemp(prefix="prodcat-swap-bench-"))
    box = sandbox(args.bootstrap, "swap")
    topics = make_topics(box, "swap", partitions=PARTITIONS, control=True)
    try:
        return _run(args, run, work, topics)
    finally:
        box.delete_all()
        delete_keys(args.redis_url, f"bench-swap:{run}:*")
        shutil.rmtree(work, ignore_errors=True)


def _run(args: argparse.Namespace, run: str, work: Path, topics: dict[str, str]) -> int:
    a = relabel(args.bundle, work / "a", f"swapbench-{run}-a")
    b = relabel(args.bundle, work / "b", f"swapbench-{run}-b")
    settings = Settings().with_overrides(
        kafka={"bootstrap": args.bootstrap, "partitions": PARTITIONS},
        topics=topics,
        redis={"url": args.redis_url, "key_prefix": f"bench-swap:{run}"},
        model={"bundle": None, "store": str(work / "store")},
        metrics={"port": 0},
        classify={"group_id": f"bench-swap-{run}"},
    )
    admin = ModelAdmin(settings, actor="swap-bench")
    admin.publish(a, live=True)
    admin.publish(b)
    versions = [f"swapbench-{run}-a", f"swapbench-{run}-b"]

    duration = 3.0 + args.swaps * args.spacing_s + 2.0
    n = int(args.rate * duration)
    rows, _ = load_dataset(args.dataset, args.data_dir, limit=min(n, 20000))
    now = datetime.now(UTC)
    events = [
        ProductEvent(
            event_type="product.created",
            event_id=f"swap-{run}-{i}",
            product_id=f"{rows[i % len(rows)].product_id}-{i // len(rows)}",
            title=rows[i % len(rows)].title,
            brand=rows[i % len(rows)].brand,
            attributes=rows[i % len(rows)].attributes,
            occurred_at=now,
        )
        for i in range(n)
    ]

    worker = open_worker(settings, instance=f"swapbench-{run}")
    starts: list[float] = []
    switched: list[float] = []
    begin, swap = worker._begin, worker._swap

    def timed_begin(messages: list[Any]) -> Any:
        starts.append(time.perf_counter())
        return begin(messages)

    def timed_swap(models: Any) -> None:
        swap(models)
        switched.append(time.perf_counter())

    worker._begin = timed_begin  # type: ignore[method-assign]
    worker._swap = timed_swap  # type: ignore[method-assign]
    worker.start()
    runner = threading.Thread(target=worker.run, daemon=True)
    runner.start()
    done = threading.Event()
    feeder = threading.Thread(
        target=feed, args=(args.bootstrap, topics["product_created"], events, args.rate, done)
    )
    print(f"streaming {n} events at {args.rate:.0f}/s; {args.swaps} swaps", flush=True)
    feeder.start()
    time.sleep(3.0)
    promoted: list[float] = []
    for k in range(args.swaps):
        target = versions[(k + 1) % 2]
        promoted.append(time.perf_counter())
        admin.promote(target, force=True)
        deadline = time.monotonic() + 60
        while len(switched) <= k and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(max(args.spacing_s - (time.perf_counter() - promoted[-1]), 0.5))
    feeder.join()
    seen = count_outputs(args.bootstrap, topics["categorized"], n)
    worker.stop()
    runner.join(30)

    gaps = [(t0, t1 - t0) for t0, t1 in itertools.pairwise(starts)]
    windows = [(p, s + 0.5) for p, s in zip(promoted, switched, strict=False)]
    per_swap = []
    for (lo, hi), at in zip(windows, switched, strict=False):
        inside = [g for t0, g in gaps if lo <= t0 + g and t0 <= hi]
        spanning = [g for t0, g in gaps if t0 <= at <= t0 + g]
        per_swap.append(
            {
                "load_s": round(at - lo, 3),
                "window_max_ms": round(max(inside, default=0.0) * 1000, 2),
                "at_switch_ms": round(max(spanning, default=0.0) * 1000, 2),
            }
        )
    steady = [
        g
        for t0, g in gaps
        if t0 > starts[0] + 1.0 and not any(lo - 0.5 <= t0 <= hi for lo, hi in windows)
    ]
    result = {
        "events": n,
        "rate": args.rate,
        "batches": len(starts),
        "swaps": per_swap,
        "swap_pause_ms": max((s["window_max_ms"] for s in per_swap), default=0.0),
        "steady_max_gap_ms": round(max(steady, default=0.0) * 1000, 2),
        "steady_p99_gap_ms": round(percentile(steady, 0.99) * 1000, 2),
        "steady_p50_gap_ms": round(percentile(steady, 0.5) * 1000, 2),
        "outputs": sum(seen.values()),
        "inputs_with_one_output": sum(1 for v in seen.values() if v == 1),
        "duplicates": sum(v - 1 for v in seen.values() if v > 1),
    }
    for k, s in enumerate(per_swap, start=1):
        print(
            f"swap {k}: loaded and switched {s['load_s']:.2f} s after promote; longest gap in "
            f"the window {s['window_max_ms']:.1f} ms; at the switch {s['at_switch_ms']:.1f} ms"
        )
    print(
        f"swap pause (longest gap between batches during a swap): {result['swap_pause_ms']:.1f} ms"
    )
    print(
        f"steady stream: longest gap {result['steady_max_gap_ms']:.1f} ms, p99 "
        f"{result['steady_p99_gap_ms']:.1f} ms, p50 {result['steady_p50_gap_ms']:.1f} ms "
        f"({len(starts)} batches)"
    )
    print(
        f"outputs: {result['outputs']} for {n} inputs; exactly one: "
        f"{result['inputs_with_one_output']}; duplicates: {result['duplicates']}"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    ok = result["inputs_with_one_output"] == n and result["outputs"] == n
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
