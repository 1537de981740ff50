"""Memory of one classify worker while a large backlog waits for it.

    python -m bench.backlog_rss --bundle DIR [--messages 1000000] [--timeout-s 900]

Produces ``--messages`` real catalog rows (the distinct rows of :func:`bench.common.distinct_rows`,
cycled, each with its own ``product_id`` and ``event_id``) to a fresh 6-partition input
topic, then starts ``prodcat classify`` on it and samples the worker's resident memory
(``VmRSS``, and ``VmHWM`` at the end) every half second until every input has its output
(or the timeout). Prints the peak, a coarse time series, and throughput. Cached answers
(texts seen earlier in the cycle) are hits, as in production. The topics and Redis keys
of the run are deleted at the end (the broker's disk is shared).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.common import (
    CODEC,
    RESULTS,
    RUN_ID,
    add_service_args,
    delete_keys,
    distinct_rows,
    make_topics,
    output_count,
    producer,
    row_event,
    sandbox,
    worker_env,
)
from bench.procs import Worker
from workers.kafka.sandbox import TopicSandbox


def produce_backlog(bootstrap: str, topic: str, n: int, data_dir: Path) -> float:
    """``n`` product.created events, cycling the distinct catalog rows; returns seconds."""
    rows = distinct_rows(data_dir)
    p = producer(
        bootstrap,
        **{
            "linger.ms": 50,
            "batch.size": 1_000_000,
            "batch.num.messages": 100_000,
            "compression.type": "lz4",
            "queue.buffering.max.messages": 1_000_000,
            "queue.buffering.max.kbytes": 1_048_576,
        },
    )
    start = time.monotonic()
    now = datetime.now(UTC)
    produce, poll = p.produce, p.poll
    for i in range(n):
        pid = f"backlog-{RUN_ID}-{i}"
        value = CODEC.encode(row_event(rows[i % len(rows)], f"backlog-{RUN_ID}", i, now))
        while True:
            try:
                produce(topic, value, pid.encode())
                break
            except BufferError:
                poll(0.05)
        if i % 50_000 == 0:
            poll(0)
    left = p.flush(300)
    if left:
        raise SystemExit(f"{left} messages not delivered to {topic}")
    return time.monotonic() - start


def status(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) // 1024
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    add_service_args(ap)
    ap.add_argument("--messages", type=int, default=1_000_000)
    ap.add_argument("--timeout-s", type=float, default=900.0, help="longest wait for the drain")
    args = ap.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    box = sandbox(args.bootstrap, "backlog")
    try:
        return run(args, box)
    finally:
        box.delete_all()
        delete_keys(args.redis_url, f"prodcat-bench:{RUN_ID}*")


def run(args: argparse.Namespace, box: TopicSandbox) -> int:
    load0 = os.getloadavg()[0]
    topics = make_topics(box, "backlog")
    print(f"producing {args.messages:,} messages to {topics['product_created']} ...", flush=True)
    took = produce_backlog(args.bootstrap, topics["product_created"], args.messages, args.data_dir)
    print(f"    {took:.0f} s ({args.messages / took:,.0f} msg/s)", flush=True)
    w = Worker(
        "classify",
        worker_env(args, topics, f"prodcat-bench:{RUN_ID}"),
        RESULTS / "backlog-worker.log",
    )
    samples: list[tuple[float, int, int]] = []  # (s since start, RSS MiB, outputs)
    start = time.monotonic()
    done = 0
    try:
        deadline = start + args.timeout_s
        next_count = 0.0
        while time.monotonic() < deadline and w.proc.poll() is None:
            t = time.monotonic() - start
            if t >= next_count:
                done = output_count(args.bootstrap, topics["categorized"])
                next_count = t + 5.0
                if done >= args.messages:
                    break
            samples.append((t, status(w.proc.pid)["VmRSS"], done))
            time.sleep(0.5)
        hwm = status(w.proc.pid)["VmHWM"] if w.proc.poll() is None else 0
    finally:
        w.stop()
    elapsed = time.monotonic() - start
    peak = max(s[1] for s in samples) if samples else 0
    print(
        f"worker drained {done:,} of {args.messages:,} in {elapsed:.0f} s; "
        f"peak RSS {peak} MiB sampled, VmHWM {hwm} MiB "
        f"(load average {load0:.1f} at the start, {os.getloadavg()[0]:.1f} at the end)"
    )
    print("\n| s | RSS MiB | outputs |\n|---:|---:|---:|")
    step = max(1, len(samples) // 20)
    for t, rss, n in samples[::step]:
        print(f"| {t:.0f} | {rss} | {n:,} |")
    (RESULTS / "backlog_rss.json").write_text(
        json.dumps(
            {
                "messages": args.messages,
                "drained": done,
                "seconds": elapsed,
                "peak_rss_mib": peak,
                "vmhwm_mib": hwm,
                "samples": samples,
            }
        )
    )
    return 0 if done >= args.messages else 1


if __name__ == "__main__":
    raise SystemExit(main())
