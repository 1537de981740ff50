"""Classify worker benchmark: four ways to turn product events into categorized events.

    python -m bench.classify_bench --bundle DIR [--events 100000] [--scenarios ab] [--profile]

One run on the local broker (``deploy/local/stack up``) with real catalog rows
(distinct texts from the shared catalogs), side by side:

(a) passthrough ceiling: the worker's Kafka clients, decode, encode, produce; no model
(b) ``prodcat classify`` with every item a cache miss (fresh Redis namespace)
(c) ``prodcat classify`` with ~90% cache hits (texts of (b), cached by (b))
(d) a straightforward per-event faust-streaming agent doing the same classification

Throughput: N events are preloaded, the worker started, and events/s taken from the
output topic's broker append times (``LogAppendTime``; the 1st to 99th percentile).
Latency: a fresh worker, then a paced producer at half of (b)'s measured maximum for
``--warmup-s`` plus ``--latency-s`` seconds, each event's ``occurred_at`` set when sent;
end-to-end is the output's append time minus ``occurred_at``, over the events sent after
the warm-up (steady state at that load: the first second of a new worker on new topics is
slower). (d) cannot sustain that rate, so it is
offered half of its own maximum (the table says which). Peak RSS is the worker's VmHWM.
``--profile`` samples (b) with py-spy. Results: ``bench/results/`` (Markdown, PNG, JSON).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import matplotlib
import msgspec

from bench.common import (
    RESULTS,
    RUN_ID,
    add_service_args,
    delete_keys,
    distinct_rows,
    make_topics,
    output_count,
    payload,
    percentile,
    preload,
    producer,
    read_times,
    sandbox,
    throughput,
    wait_outputs,
    worker_env,
)
from bench.procs import CpuMeter, Worker
from bench.profiles import summarize
from export.data.catalog import Example
from workers.kafka.sandbox import TopicSandbox

matplotlib.use("Agg")
import matplotlib.pyplot as plt

PY_SPY = str(Path(sys.executable).with_name("py-spy"))  # the venv's, also when not on PATH


@dataclass
class Result:
    name: str
    events: int = 0
    events_per_s: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    offered_per_s: float = 0.0
    rss_mib: float = 0.0
    cpu_us_per_event: float = 0.0
    cpu_split_us: dict[str, float] = field(default_factory=dict)  # per thread / service
    latency_cpu_split_us: dict[str, float] = field(default_factory=dict)  # the paced run's


def mix(cached: list[Example], new: list[Example]) -> list[Example]:
    """Nine cached texts, then one new one, repeated."""
    return [
        new[i // 10] if i % 10 == 9 else cached[i] for i in range(min(len(cached), 10 * len(new)))
    ]


def run_throughput(
    args: argparse.Namespace, topics_box: TopicSandbox, kind: str, tag: str, records: list[Any],
    prefix: str, profile: Path | None = None,
) -> Result:  # fmt: skip
    topics = make_topics(topics_box, tag)
    preload(args.bootstrap, topics["product_created"], records)
    w = Worker(kind, worker_env(args, topics, prefix), RESULTS / f"{tag}.log")
    spy = None
    try:
        # CPU per event is counted from the first output on (start-up excluded); poll often,
        # or a fast worker is done before the first look.
        wait_outputs(args.bootstrap, topics["categorized"], 1, 120, poll_s=0.02)
        cpu0, out0 = w.cpu_s(), output_count(args.bootstrap, topics["categorized"])
        meter = CpuMeter(w)
        meter.start()
        if profile is not None:
            spy = subprocess.Popen(
                [PY_SPY, "record", "--pid", str(w.proc.pid), "--rate", "250", "--format",
                 "raw", "-o", str(profile), "--duration", str(args.profile_s),
                 *(["--gil"] if args.profile_gil else [])],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
        wait_outputs(args.bootstrap, topics["categorized"], len(records), args.timeout_s)
        rss = w.rss_mib()
        done = max(1, len(records) - out0)
        cpu_us = (w.cpu_s() - cpu0) * 1e6 / done
        split = meter.split(done)
    finally:
        if spy is not None:
            spy.wait(args.profile_s + 30)
        w.stop()
    times = read_times(args.bootstrap, topics["categorized"], len(records))
    return Result(
        tag, len(times), throughput(times), rss_mib=rss, cpu_us_per_event=cpu_us,
        cpu_split_us=split,
    )  # fmt: skip


def run_latency(
    args: argparse.Namespace, topics_box: TopicSandbox, kind: str, tag: str, rows: list[Example],
    prefix: str, rate: float,
) -> tuple[float, float, dict[str, float]]:  # fmt: skip
    """p50 and p99 end-to-end ms of a paced run, and its CPU µs/event by thread and service
    (the broker's includes ingesting the paced input, which a preloaded run does not pay)."""
    topics = make_topics(topics_box, f"{tag}-lat")
    w = Worker(kind, worker_env(args, topics, prefix), RESULTS / f"{tag}-lat.log")
    try:
        p = producer(args.bootstrap)
        p.produce(topics["product_created"], payload(rows[0], f"{tag}-probe", 0)[1])
        p.flush(10)
        wait_outputs(args.bootstrap, topics["categorized"], 1, 180)  # the worker is up
        total = int(rate * (args.warmup_s + args.latency_s))
        # Encoded before the clock starts, with a placeholder event time spliced at send
        # time: the load generator shares the 2 cores, so it should cost little per event.
        placeholder = datetime(2000, 1, 1, 0, 0, 0, 1, tzinfo=UTC)
        marker = msgspec.json.encode(placeholder)
        templates = [
            payload(rows[j % len(rows)], f"{tag}-lat", j, placeholder) for j in range(1, total + 1)
        ]
        meter = CpuMeter(w)
        meter.start()
        start_ms = int(time.time() * 1000)
        start, sent = time.monotonic(), 0
        while sent < total:
            due = min(total, int((time.monotonic() - start) * rate))
            if due > sent:
                now = msgspec.json.encode(datetime.now(UTC))
                for key, value in templates[sent:due]:
                    p.produce(topics["product_created"], value.replace(marker, now, 1), key)
            sent = due
            p.poll(0)
            time.sleep(0.002)
        p.flush(30)
        wait_outputs(args.bootstrap, topics["categorized"], total + 1, args.timeout_s)
        split = meter.split(total, load_generator=True)
    finally:
        w.stop()
    times = read_times(args.bootstrap, topics["categorized"], total + 1)
    counted_from = start_ms + int(args.warmup_s * 1000)  # not the probe, not the warm-up
    lat = [float(a - e) for a, e in times if e >= counted_from]
    return percentile(lat, 0.5), percentile(lat, 0.99), split


# --------------------------------------------------------------------------- report


def _check(ok: bool, text: str) -> str:
    return f"- {text}: {'yes' if ok else 'NO'}"


def report(
    results: list[Result], args: argparse.Namespace, profile_md: str | None, load: list[float]
) -> None:
    by_name = {r.name[0]: r for r in results}
    a, b, d = by_name.get("a"), by_name.get("b"), by_name.get("d")
    rows = [
        "| scenario | events | events/s | vs (a) | worker CPU µs/event | offered ev/s "
        "| p50 ms | p99 ms | peak RSS MiB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        vs_a = f"{r.events_per_s / a.events_per_s:.2f}" if a is not None else "-"
        rows.append(
            f"| {r.name} | {r.events} | {r.events_per_s:,.0f}"
            f" | {vs_a} | {r.cpu_us_per_event:.0f}"
            f" | {r.offered_per_s:,.0f} | {r.p50_ms:.0f} | {r.p99_ms:.0f} | {r.rss_mib:.0f} |"
        )
    checks = []
    if b is not None:
        checks.append(
            _check(b.events_per_s >= 20000, f"(b) ≥ 20,000 events/s ({b.events_per_s:,.0f})")
        )
        if a is not None:
            ratio_a = b.events_per_s / a.events_per_s
            checks.append(_check(ratio_a >= 1 / 3, f"(b) ≥ 1/3 of (a) ({ratio_a:.2f})"))
        if d is not None:
            ratio_d = b.events_per_s / max(d.events_per_s, 1)
            checks.append(_check(ratio_d >= 10, f"(b) ≥ 10× (d) ({ratio_d:.1f}×)"))
        if args.latency_s > 0:
            checks.append(
                _check(b.p99_ms <= 100, f"(b) p99 ≤ 100 ms at half load ({b.p99_ms:.0f} ms)")
            )
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    md = [
        f"# Classify worker benchmark ({when})",
        "",
        f"`python -m bench.classify_bench {' '.join(sys.argv[1:])}` on {os.cpu_count()} CPUs "
        "shared with the broker "
        f"(1-minute load average at the start {load[0]:.1f}, at the end {load[1]:.1f}); "
        f"bundle `{args.bundle.name}`.",
        "",
        *rows,
        "",
        *checks,
        "",
        "CPU µs per event, by thread and service (preloaded throughput run; paced run):",
        "",
        *[f"- {r.name}: {r.cpu_split_us}; paced: {r.latency_cpu_split_us or '-'}" for r in results],
    ]
    if profile_md:
        md += ["", "## Profile of (b)", "", profile_md]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "classify_bench.md").write_text("\n".join(md) + "\n")
    (RESULTS / "classify_bench.json").write_text(json.dumps([asdict(r) for r in results], indent=2))
    plot(results)
    print("\n".join(md))


def plot(results: list[Result]) -> None:
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    names = [r.name for r in results]
    colors = {"a": "grey", "b": "C0", "c": "C2", "d": "C3"}
    ax1.bar(names, [r.events_per_s for r in results], color=[colors[n[0]] for n in names])
    ax1.set_ylabel("events/s")
    ax1.set_title("max throughput")
    x = range(len(results))
    ax2.bar([i - 0.2 for i in x], [max(r.p50_ms, 1) for r in results], 0.4, label="p50")
    ax2.bar([i + 0.2 for i in x], [max(r.p99_ms, 1) for r in results], 0.4, label="p99")
    ax2.set_xticks(list(x), names)
    ax2.set_yscale("log")
    ax2.set_ylabel("end-to-end ms")
    ax2.set_title("latency at the offered load")
    ax2.legend()
    fig.tight_layout()
    fig.savefig(RESULTS / "classify_bench.png", dpi=120)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    add_service_args(ap)
    ap.add_argument("--events", type=int, default=100_000, help="events per throughput run")
    ap.add_argument("--faust-events", type=int, default=5_000, help="events for (d)")
    ap.add_argument("--latency-s", type=float, default=10.0, help="paced run length (measured)")
    ap.add_argument(
        "--warmup-s",
        type=float,
        default=2.0,
        help="paced seconds before the measured ones (sent at the same rate, not counted)",
    )
    ap.add_argument("--timeout-s", type=float, default=600.0)
    ap.add_argument("--profile", action="store_true", help="py-spy profile of (b)")
    ap.add_argument("--profile-s", type=int, default=10)
    ap.add_argument(
        "--worker-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for the workers, e.g. PRODCAT_CLASSIFY_BATCH_MAX=2000",
    )
    ap.add_argument(
        "--profile-gil", action="store_true", help="sample only the thread holding the GIL"
    )
    ap.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="offered ev/s of the latency runs (default: half (b))",
    )
    ap.add_argument(
        "--scenarios", default="abcd", help="which of (a) (b) (c) (d) to run, e.g. 'ab'"
    )
    args = ap.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    start_load = os.getloadavg()[0]
    topics = sandbox(args.bootstrap, "classify")
    try:
        run_all(args, topics, start_load)
    finally:
        topics.delete_all()
        delete_keys(args.redis_url, f"prodcat-bench:{RUN_ID}*")
    return 0


def run_all(args: argparse.Namespace, topics_box: TopicSandbox, start_load: float) -> None:
    rows = distinct_rows(args.data_dir)
    n = args.events
    if len(rows) < int(n * 1.1) + 1000:
        raise SystemExit(f"only {len(rows)} distinct rows; use --events <= {len(rows) // 2}")
    seen, fresh = rows[:n], rows[n:]
    run_id = RUN_ID
    prefix = f"prodcat-bench:{run_id}"
    now = datetime.now(UTC)
    base = [payload(e, f"b{run_id}", i, now) for i, e in enumerate(seen)]
    hits = n - n // 10
    mixed = [payload(e, f"c{run_id}", i, now) for i, e in enumerate(mix(seen, fresh[: n - hits]))]
    profile = RESULTS / "profile_b.txt" if args.profile else None
    wanted = set(args.scenarios)
    results: dict[str, Result] = {}
    runs = [
        ("a", "passthrough", "a-passthrough", base, None),
        ("b", "classify", "b-classify-miss", base, profile),
        ("c", "classify", "c-classify-90hit", mixed, None),
        ("d", "faust", "d-faust", base[: args.faust_events], None),
    ]
    for letter, kind, tag, records, prof in runs:
        if letter not in wanted:
            continue
        print(f"({letter}) {tag} ...", flush=True)
        r = run_throughput(args, topics_box, kind, tag, records, prefix, prof)
        results[letter] = r
        print(f"    {r.events_per_s:,.0f} ev/s, {r.cpu_us_per_event:.0f} CPU µs/event", flush=True)
        print(f"    CPU µs/event by thread and service: {r.cpu_split_us}", flush=True)

    # Latency at half of (b)'s maximum (or of the fastest scenario measured, without (b)).
    rate = (results["b"] if "b" in results else max(results.values(), key=_speed)).events_per_s / 2
    if args.rate:
        rate = args.rate
    lat_rows = fresh[n - hits :]  # never classified: the misses of (c)'s paced run
    # (b)'s paced run has a Redis namespace of its own, so every distinct text is a miss
    misses = seen + lat_rows
    sources = {
        "a": ("passthrough", misses, prefix),
        "b": ("classify", misses, f"{prefix}-lat"),
        "c": ("classify", mix(seen, lat_rows), prefix),
        "d": ("faust", misses, prefix),
    }
    for letter, r in results.items() if args.latency_s > 0 else ():
        kind, source, pfx = sources[letter]
        offered = min(rate, r.events_per_s / 2) if letter == "d" else rate
        print(f"latency {r.name} at {offered:,.0f} ev/s ...", flush=True)
        r.offered_per_s = offered
        r.p50_ms, r.p99_ms, r.latency_cpu_split_us = run_latency(
            args, topics_box, kind, r.name, source, pfx, offered
        )
        print(f"    p50 {r.p50_ms:.0f} ms, p99 {r.p99_ms:.0f} ms", flush=True)
        print(f"    CPU µs/event by thread and service: {r.latency_cpu_split_us}", flush=True)
    load = [start_load, os.getloadavg()[0]]
    profile_md = summarize(profile) if profile and profile.exists() else None
    report(list(results.values()), args, profile_md, load)


def _speed(r: Result) -> float:
    return r.events_per_s


if __name__ == "__main__":
    raise SystemExit(main())
