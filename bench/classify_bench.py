"""Classify worker benchmark: four ways to turn product events into categorized events.

    python bench/classify_bench.py [--bundle DIR] [--events 100000] [--profile]

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
import random
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import matplotlib
import msgspec
import redis
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic  # where it is typed; admin re-exports it

from export.data.catalog import Example
from export.data.datasets import load_dataset
from workers.core.codec import Codec
from workers.core.events import ProductEvent

matplotlib.use("Agg")
import matplotlib.pyplot as plt

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
PY_SPY = str(Path(sys.executable).with_name("py-spy"))  # the venv's, also when not on PATH
CODEC = Codec(1 << 20)


class _Times(msgspec.Struct):
    event_time: datetime


_TIMES = msgspec.json.Decoder(_Times)


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


# --------------------------------------------------------------------------- data and kafka


def distinct_rows(data_dir: Path) -> list[Example]:
    """Every distinct product text of the five catalogs, in a seeded random order.

    Shuffled so that any slice has the mix of the whole (about a third Chinese titles):
    (b)'s maximum and its latency at half of it are then measured on the same kind of
    text, whichever slice each run takes."""
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


def payload(e: Example, tag: str, i: int, when: datetime | None = None) -> tuple[bytes, bytes]:
    event = ProductEvent(
        event_type="product.created",
        event_id=f"{tag}-{i}",
        product_id=f"{tag}-{i}",
        title=e.title,
        brand=e.brand,
        description=e.description,
        attributes=e.attributes,
        occurred_at=when or datetime.now(UTC),
    )
    return event.product_id.encode(), CODEC.encode(event)


def mix(cached: list[Example], new: list[Example]) -> list[Example]:
    """Nine cached texts, then one new one, repeated."""
    return [
        new[i // 10] if i % 10 == 9 else cached[i] for i in range(min(len(cached), 10 * len(new)))
    ]


def producer(bootstrap: str) -> Producer:
    return Producer(
        {"bootstrap.servers": bootstrap, "linger.ms": 5, "partitioner": "murmur2_random",
         "queue.buffering.max.messages": 500_000}
    )  # fmt: skip


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


RUN_ID = uuid.uuid4().hex[:8]
"""Names every topic and Redis key of this run, so :func:`cleanup` finds them all."""


def make_topics(admin: AdminClient, tag: str) -> dict[str, str]:
    kinds = ("product_created", "product_updated", "categorized", "review", "dead_letter")
    names = {k: f"bench.{RUN_ID}.{tag}.{k}" for k in kinds}
    new = [
        NewTopic(n, PARTITIONS, 1, config={"message.timestamp.type": "LogAppendTime"})
        for n in names.values()
    ]
    for f in admin.create_topics(new).values():
        f.result(30)
    time.sleep(1.0)
    return names


def output_count(bootstrap: str, topic: str) -> int:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-count"})
    try:
        return sum(
            c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in range(PARTITIONS)
        )
    finally:
        c.close()


def read_times(bootstrap: str, topic: str, n: int) -> list[tuple[int, int]]:
    """(broker append ms, event_time ms) of every output."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4().hex}",
                  "enable.auto.commit": False})  # fmt: skip
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
    ts = sorted(t for t, _ in times)
    lo, hi = ts[len(ts) // 100], ts[len(ts) * 99 // 100 - 1]
    return (len(ts) * 0.98) / max((hi - lo) / 1000.0, 1e-3)


def percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


# --------------------------------------------------------------------------- workers


def threads_cpu_s(pid: int) -> dict[str, float]:
    """CPU seconds of each thread of ``pid``, summed by thread name."""
    out: dict[str, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        name = "rdk:broker" if name.startswith("rdk:broker") else name
        fields = stat.rsplit(")", 1)[1].split()
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out


def service_pids() -> dict[str, int]:
    """The local Kafka broker's and Redis server's pids, if found (for their CPU share)."""
    found: dict[str, int] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if b"kafka.Kafka" in cmd:
            found["kafka broker"] = int(proc.name)
        elif cmd.startswith(b"redis-server") or b"/redis-server" in cmd.split(b"\0")[0]:
            found["redis-server"] = int(proc.name)
    return found


def process_cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def steal_s() -> float:
    """CPU seconds the hypervisor took from this machine's CPUs so far (``/proc/stat``): on
    a shared host, a run that lost a lot of them is slow for reasons outside the worker."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    except OSError:
        return 0.0
    return int(fields[8]) / os.sysconf("SC_CLK_TCK") if len(fields) > 8 else 0.0


class CpuMeter:
    """CPU seconds of a worker's threads, the broker, Redis and this process, between
    :meth:`start` and :meth:`split` (µs per event, by thread and service), and the CPU
    time stolen by the hypervisor meanwhile."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.services = service_pids()
        self._threads: dict[str, float] = {}
        self._services: dict[str, float] = {}
        self._self = 0.0
        self._steal = 0.0

    @staticmethod
    def _own_cpu_s() -> float:
        t = os.times()
        return t.user + t.system

    def start(self) -> None:
        self._threads = self.worker.thread_cpu_s()
        self._services = {name: process_cpu_s(pid) for name, pid in self.services.items()}
        self._self = self._own_cpu_s()
        self._steal = steal_s()

    def split(self, events: int, *, load_generator: bool = False) -> dict[str, float]:
        """µs per event since :meth:`start`, largest first (shares under 0.5 µs left out);
        with ``load_generator``, this process's own CPU too (it sends the paced events)."""
        done = max(1, events)
        out = {
            f"worker {name}": (t - self._threads.get(name, 0.0)) * 1e6 / done
            for name, t in self.worker.thread_cpu_s().items()
        }
        out.update(
            {name: (process_cpu_s(pid) - self._services[name]) * 1e6 / done
             for name, pid in self.services.items()}
        )  # fmt: skip
        if load_generator:
            out["load generator (this process)"] = (self._own_cpu_s() - self._self) * 1e6 / done
        out["stolen by the hypervisor"] = (steal_s() - self._steal) * 1e6 / done
        return {k: round(v, 1) for k, v in sorted(out.items(), key=lambda kv: -kv[1]) if v >= 0.5}


class Worker:
    def __init__(self, kind: str, env: dict[str, str], log: Path) -> None:
        cmd = {
            "classify": [sys.executable, "-m", "workers.cli", "classify"],
            "passthrough": [sys.executable, "bench/baselines.py", "passthrough"],
            "faust": [sys.executable, "bench/baselines.py", "faust"],
        }[kind]
        self.log = log.open("wb")
        self.proc = subprocess.Popen(
            cmd, cwd=REPO, env=env, stdout=self.log, stderr=subprocess.STDOUT
        )

    def cpu_s(self) -> float:
        """User + system CPU seconds of the worker so far (all its threads)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def thread_cpu_s(self) -> dict[str, float]:
        """CPU seconds per thread name (librdkafka's threads are ``rdk:*``)."""
        return threads_cpu_s(self.proc.pid)

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.log.close()


def worker_env(args: argparse.Namespace, topics: dict[str, str], prefix: str) -> dict[str, str]:
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


def cleanup(args: argparse.Namespace, admin: AdminClient) -> None:
    """Delete this run's topics and Redis keys (the broker and Redis are shared)."""
    topics = [t for t in admin.list_topics(timeout=10).topics if t.startswith(f"bench.{RUN_ID}.")]
    if topics:
        for future in admin.delete_topics(topics, operation_timeout=30).values():
            future.result(60)
    client = redis.Redis.from_url(args.redis_url)
    batch: list[bytes] = []
    for key in client.scan_iter(match=f"prodcat-bench:{RUN_ID}*", count=5000):
        batch.append(key)
        if len(batch) >= 5000:
            client.unlink(*batch)
            batch.clear()
    if batch:
        client.unlink(*batch)
    client.close()


def wait_outputs(bootstrap: str, topic: str, n: int, timeout_s: float, poll_s: float = 0.5) -> None:
    deadline = time.monotonic() + timeout_s
    while output_count(bootstrap, topic) < n:
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {n} outputs on {topic}")
        time.sleep(poll_s)


def run_throughput(
    args: argparse.Namespace, admin: AdminClient, kind: str, tag: str, records: list[Any],
    prefix: str, profile: Path | None = None,
) -> Result:  # fmt: skip
    topics = make_topics(admin, tag)
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
    args: argparse.Namespace, admin: AdminClient, kind: str, tag: str, rows: list[Example],
    prefix: str, rate: float,
) -> tuple[float, float, dict[str, float]]:  # fmt: skip
    """p50 and p99 end-to-end ms of a paced run, and its CPU µs/event by thread and service
    (the broker's includes ingesting the paced input, which a preloaded run does not pay)."""
    topics = make_topics(admin, f"{tag}-lat")
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


STAGES = {
    "onnxruntime inference": "Session.run",
    "taxonomy decide (Taxonomy.decide)": "Taxonomy.decide ",
    "decision JSON (DecisionEncoder.encode_decided)": "DecisionEncoder.encode_decided ",
    "featurize (Featurizer.transform_prepared)": "Featurizer.transform_prepared ",
    "normalize once per item (Featurizer.prepare)": "Featurizer.prepare ",
    "content hashes (cache keys)": "PreparedText.content_hash",
    "JSON decode + validation": "Codec.decode_product",
    "output events (BatchPipeline._encode)": "BatchPipeline._encode",
    "Redis MGET (ResultCache.lookup)": "ResultCache.lookup",
    "Redis write-back (ResultCache.store)": "ResultCache.store",
    "produce calls (OutputSender.send)": "OutputSender.send",
    "delivery callbacks (_Run.__call__)": "_Run.__call__",
    "model chunks run by the loop thread (work stealing)": "BatchPipeline._work",
    "consume() and poll() (C calls in the loop)": "ClassifyWorker.step ",
}
SELF_STAGES = {"consume() and poll() (C calls in the loop)"}  # matched on the leaf frame only
LOOP_STAGES = {"model chunks run by the loop thread (work stealing)"}  # not the model thread


def summarize_profile(raw: Path, top: int = 15) -> str:
    """Per-thread shares, time per stage and the top functions of a py-spy raw profile."""
    self_s: Counter[str] = Counter()
    stage: Counter[str] = Counter()
    thread: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        self_s[frames[-1]] += n
        if "concurrent/futures/thread.py" in stack:
            thread["model thread"] += n
        elif "ModelSwitcher._follow" in stack:
            thread["model follower (control topic; mostly blocked in poll)"] += n
        else:
            thread["loop thread"] += n
        on_model_thread = "concurrent/futures/thread.py" in stack
        for name, needle in STAGES.items():
            if name in LOOP_STAGES and on_model_thread:
                continue
            if needle in (frames[-1] if name in SELF_STAGES else stack):
                stage[name] += n

    def pct(n: int) -> str:
        return f"{100 * n / max(total, 1):.1f}"

    lines = [
        f"py-spy, {total} samples of running Python threads (librdkafka's own threads "
        "are native and not sampled).",
        "",
        "| thread | share % |",
        "|---|---:|",
        *[f"| {t} | {pct(n)} |" for t, n in thread.most_common()],
        "",
        "| stage (inclusive) | share % |",
        "|---|---:|",
        *[f"| {name} | {pct(stage[name])} |" for name in STAGES],
        "",
        "| function (self) | share % |",
        "|---|---:|",
        *[f"| `{f}` | {pct(n)} |" for f, n in self_s.most_common(top)],
    ]
    return "\n".join(lines)


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
        f"`python {' '.join(sys.argv)}` on {os.cpu_count()} CPUs shared with the broker "
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


def add_service_args(ap: argparse.ArgumentParser) -> None:
    """``--bundle``, ``--data-dir``, ``--bootstrap`` and ``--redis-url``, as every Kafka
    benchmark here takes them (the services default to the local stack's, or the env's)."""
    ap.add_argument("--bundle", type=Path, required=True, help="model bundle directory")
    ap.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument(
        "--bootstrap", default=os.environ.get("PRODCAT_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    )
    ap.add_argument(
        "--redis-url", default=os.environ.get("PRODCAT_REDIS_URL", "redis://127.0.0.1:6379/0")
    )


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
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    try:
        run_all(args, admin, start_load)
    finally:
        cleanup(args, admin)
    return 0


def run_all(args: argparse.Namespace, admin: AdminClient, start_load: float) -> None:
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
        r = run_throughput(args, admin, kind, tag, records, prefix, prof)
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
            args, admin, kind, r.name, source, pfx, offered
        )
        print(f"    p50 {r.p50_ms:.0f} ms, p99 {r.p99_ms:.0f} ms", flush=True)
        print(f"    CPU µs/event by thread and service: {r.latency_cpu_split_us}", flush=True)
    load = [start_load, os.getloadavg()[0]]
    profile_md = summarize_profile(profile) if profile and profile.exists() else None
    report(list(results.values()), args, profile_md, load)


def _speed(r: Result) -> float:
    return r.events_per_s


if __name__ == "__main__":
    raise SystemExit(main())
