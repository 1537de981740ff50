"""Faults under the feedback app, with the figures issue 19's closing note asks for.

    python -m bench.feedback_faults --bundle /work/var/bundles/<version> \\
        [--products 300] [--rate 50] [--fault-at 2] [--faults redis-restart,kill-9,...]

Per fault, on fresh topics and a private redis-server: a classify worker (in this process)
and ``prodcat feedback`` (a subprocess logging to a file, with its metrics port); real
products (bigbasket) are categorized, then a moderator corrects each of them at --rate a
second, and the fault strikes --fault-at seconds into that stream:

* ``redis-restart``: Redis stops and starts again empty 3 s later;
* ``redis-away``: Redis (append-only file) stops for 10 s and comes back with its data;
* ``kill-9``: the app is killed (-9) and started again at once under the same name;
* ``broker-outage``: the broker (a private one: ``deploy/local/stack up kafka`` in a temp
  folder, needs tests/integration/private_kafka.py) stops (SIGTERM) for 10 s;
* ``parking-restart``: the corrections come before their products (parked), the app is
  stopped (SIGTERM) and started again, then the products are created.

Afterwards every corrected product is updated once and the worker's answers are read.
Printed per fault: corrections sent, overrides present in Redis with the corrected path,
worker answers with the override, recovery (end of the fault until every override is in
Redis), and the app's log lines from the fault on (all of them; WARNING and above). The
helpers are the integration tests' (tests/integration/feedback_support.py and friends).
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from bench.common import add_service_args, sandbox
from export.data.catalog import Example
from tests.integration.classify_support import (
    categorized,
    free_port,
    load_rows,
    read_all,
    running_worker,
    wait_for,
)
from tests.integration.feedback_support import (
    AppProcess,
    FeedbackSetup,
    Paced,
    corrections_for,
    create,
    distinct,
    feedback,
    leaves,
    overrides_held,
    product_event,
    send,
)
from tests.integration.redis_support import PrivateRedis
from workers.core.events import CategorizedEvent

FAULTS = ("redis-restart", "redis-away", "kill-9", "broker-outage", "parking-restart")
TIMEOUT_S = 180.0
LEVELS = (" WARNING ", " ERROR ", " CRITICAL ")


@dataclass
class Figures:
    fault: str
    sent: int = 0
    present: int = 0
    answered: int = 0
    recovery_s: float = float("nan")
    lines: int = 0
    warnings: int = 0
    note: str = ""

    def row(self) -> str:
        return (
            f"| {self.fault} | {self.sent} | {self.present}/{self.sent} | "
            f"{self.answered}/{self.sent} | {self.recovery_s:.1f} s | {self.lines} "
            f"({self.warnings} warning+) | {self.note} |"
        )


class Run:
    """One fault's set-up: topics, a private Redis, the app as a subprocess."""

    def __init__(self, args: argparse.Namespace, fault: str, bootstrap: str, tmp: Path) -> None:
        self.args, self.fault, self.tmp = args, fault, tmp
        self.redis = PrivateRedis(free_port(), tmp, persistent=fault == "redis-away")
        self.redis.start()
        self.client = self.redis.client()
        self.topics = sandbox(bootstrap, f"faults.{fault}")
        self.s = FeedbackSetup.make(
            self.topics, bootstrap, self.redis.url, args.bundle, tmp / "faust",
            redis_probe_interval_s=0.5,
        )  # fmt: skip
        self.port = free_port()
        self.s.extra["redis"] = {"socket_timeout_s": 0.5}
        self.s.extra["metrics"] = {"port": self.port}
        self.log = tmp / "feedback.log"
        self.app: AppProcess | None = None
        self.taxonomy = leaves(args.bundle)
        self.rows: list[Example] = []

    def start_app(self) -> float:
        """Start ``prodcat feedback``; seconds until it is ready."""
        began = time.monotonic()
        self.app = AppProcess(self.s, self.log, "bench")
        wait_for(self.ready, TIMEOUT_S, "the feedback app to be ready", 0.1)
        return time.monotonic() - began

    def stop_app(self) -> None:
        if self.app is not None and self.app.proc.poll() is None:
            self.app.proc.send_signal(signal.SIGTERM)
            self.app.proc.wait(60)

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=2) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def metric(self, name: str, **labels: str) -> float:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as r:
                text = r.read().decode()
        except OSError:
            return float("nan")
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and all(
                    sample.labels.get(k) == v for k, v in labels.items()
                ):
                    return float(sample.value)
        return 0.0

    def log_lines(self) -> list[str]:
        return self.log.read_text(errors="replace").splitlines() if self.log.exists() else []

    def close(self) -> None:
        if self.app is not None:
            self.stop_app()
            self.app.kill()
        if self.args.log_dir is not None and self.log.exists():
            self.args.log_dir.mkdir(parents=True, exist_ok=True)
            shutil.copy(self.log, self.args.log_dir / f"{self.fault}.log")
        self.client.close()
        self.redis.stop()
        self.topics.delete_all(strict=False)


def answered_with_override(run: Run, right: dict[str, tuple[str, ...]]) -> int:
    """Update every corrected product once; how many the worker answers with the override."""
    s = run.s
    rows = {r.product_id: r for r in run.rows}
    warm = product_event(rows[next(iter(right))], "u-warm", "product.updated")
    send(s.bootstrap, s.topics["product_updated"], [warm])  # the worker finds Redis again
    wait_for(
        lambda: any(e.causation_id == warm.event_id for e in answers(run)),
        TIMEOUT_S,
        "the warm-up answer",
    )
    updates = [product_event(rows[p], f"u-{i}", "product.updated") for i, p in enumerate(right)]
    send(s.bootstrap, s.topics["product_updated"], updates)
    causes = {u.event_id for u in updates}
    wait_for(
        lambda: sum(e.causation_id in causes for e in answers(run)) >= len(updates),
        TIMEOUT_S,
        "the worker's answers",
    )
    got = {e.product_id: e for e in answers(run) if e.causation_id in causes}
    return sum(
        e.source == "override" and tuple(e.category_path) == right[p] for p, e in got.items()
    )


def answers(run: Run) -> list[CategorizedEvent]:
    return categorized(read_all(run.s.bootstrap, run.s.topics["categorized"], settle_s=0.3))


def stream_with_fault(run: Run, fault: Callable[[], float]) -> Figures:
    """Products categorized, corrections streamed, ``fault`` (returns when it ended) struck
    --fault-at seconds in; the figures."""
    s, args = run.s, run.args
    run.start_app()
    create(s, run.rows)
    first = categorized(read_all(s.bootstrap, s.topics["categorized"], expect=len(run.rows)))
    wait_for(
        lambda: (
            run.metric("prodcat_feedback_consumed_total", topic=s.topics["categorized"])
            >= len(run.rows)
        ),
        TIMEOUT_S,
        "the app to see every prediction",
    )
    right = corrections_for(first, run.taxonomy)
    events = [feedback(p, "moderator", q, actor="mod-1") for p, q in right.items()]
    stream = Paced(s, events, args.rate)
    stream.start()
    time.sleep(args.fault_at)
    mark = len(run.log_lines())
    ended = fault()
    stream.join(TIMEOUT_S)
    wait_for(
        lambda: overrides_held(run.client, s.prefix, right) == len(right),
        TIMEOUT_S,
        "every override in Redis",
        0.1,
    )
    recovery_s = time.monotonic() - ended
    fig = Figures(run.fault, sent=stream.sent, recovery_s=recovery_s)
    fig.answered = answered_with_override(run, right)
    fig.present = overrides_held(run.client, s.prefix, right)
    restored = run.metric("prodcat_feedback_overrides_restored_total", reason="missing")
    refetched = run.metric("prodcat_feedback_input_refetched_total")
    fig.note = f"restored from the tables: {restored:.0f}; partitions refetched: {refetched:.0f}"
    count_lines(run, fig, mark)
    return fig


def count_lines(run: Run, fig: Figures, mark: int) -> None:
    lines = run.log_lines()[mark:]
    fig.lines = len(lines)
    fig.warnings = sum(any(level in line for level in LEVELS) for line in lines)


def redis_restart(run: Run) -> Figures:
    def fault() -> float:
        run.redis.stop()
        time.sleep(3.0)
        run.redis.start()  # empty
        return time.monotonic()

    return stream_with_fault(run, fault)


def redis_away(run: Run) -> Figures:
    def fault() -> float:
        run.redis.stop()
        time.sleep(10.0)
        run.redis.start()  # with its append-only file
        return time.monotonic()

    return stream_with_fault(run, fault)


def kill_9(run: Run) -> Figures:
    def fault() -> float:
        assert run.app is not None
        run.app.kill()
        killed = time.monotonic()
        run.app = AppProcess(run.s, run.log, "bench")
        return killed  # recovery counted from the kill

    return stream_with_fault(run, fault)


def broker_outage(run: Run, kafka: Any) -> Figures:
    def fault() -> float:
        kafka.stop(signal.SIGTERM)
        time.sleep(10.0)
        kafka.start()
        return time.monotonic()

    return stream_with_fault(run, fault)


def parking_restart(run: Run) -> Figures:
    s = run.s
    run.start_app()
    right = {
        r.product_id: run.taxonomy[(7 * i) % len(run.taxonomy)] for i, r in enumerate(run.rows)
    }
    stream = Paced(s, [feedback(p, "moderator", q) for p, q in right.items()], run.args.rate)
    stream.start()
    stream.join(TIMEOUT_S)
    wait_for(
        lambda: run.metric("prodcat_feedback_parked") == len(right),
        TIMEOUT_S,
        "every correction parked",
    )
    mark = len(run.log_lines())
    run.stop_app()
    restart_s = run.start_app()
    parked_after = run.metric("prodcat_feedback_parked")
    created = time.monotonic()
    create(s, run.rows)
    wait_for(
        lambda: overrides_held(run.client, s.prefix, right) == len(right),
        TIMEOUT_S,
        "every parked correction applied",
        0.1,
    )
    fig = Figures(run.fault, sent=stream.sent, recovery_s=time.monotonic() - created)
    fig.answered = answered_with_override(run, right)
    fig.present = overrides_held(run.client, s.prefix, right)
    fig.note = (
        f"parked gauge {parked_after:.0f} right after the restart (ready in {restart_s:.1f} s); "
        "recovery: products created until every override is in Redis"
    )
    count_lines(run, fig, mark)
    return fig


@contextmanager
def private_kafka(tmp: Path) -> Iterator[Any]:
    from tests.integration.private_kafka import PrivateKafka

    kafka = PrivateKafka(tmp / "kafka")
    kafka.start()
    try:
        yield kafka
    finally:
        kafka.close()


def one(args: argparse.Namespace, fault: str) -> Figures:
    with tempfile.TemporaryDirectory(prefix=f"prodcat-faults-{fault}-") as name:
        tmp = Path(name)
        if fault == "broker-outage":
            with private_kafka(tmp) as kafka:
                return measured(
                    args, fault, kafka.bootstrap, tmp, lambda r: broker_outage(r, kafka)
                )
        action = {
            "redis-restart": redis_restart,
            "redis-away": redis_away,
            "kill-9": kill_9,
            "parking-restart": parking_restart,
        }[fault]
        return measured(args, fault, args.bootstrap, tmp, action)


def measured(
    args: argparse.Namespace,
    fault: str,
    bootstrap: str,
    tmp: Path,
    action: Callable[[Run], Figures],
) -> Figures:
    run = Run(args, fault, bootstrap, tmp)
    run.rows = distinct(load_rows(args.data_dir), args.products)
    worker = run.s.settings().with_overrides(metrics={"port": 0})
    try:
        with running_worker(worker):
            return action(run)
    finally:
        run.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_service_args(ap)
    ap.add_argument("--products", type=int, default=300, help="products corrected per fault")
    ap.add_argument("--rate", type=float, default=50.0, help="corrections a second")
    ap.add_argument("--fault-at", type=float, default=2.0, help="seconds into the stream")
    ap.add_argument("--log-dir", type=Path, help="keep each fault's app log here")
    ap.add_argument(
        "--faults", default=",".join(FAULTS), help="comma-separated, of " + ", ".join(FAULTS)
    )
    args = ap.parse_args(argv)
    wanted = [f.strip() for f in args.faults.split(",") if f.strip()]
    unknown = sorted(set(wanted) - set(FAULTS))
    if unknown:
        ap.error(f"unknown faults {unknown}: choose from {', '.join(FAULTS)}")
    rows = []
    for fault in wanted:
        print(f"-- {fault}", flush=True)
        fig = one(args, fault)
        print(fig.row(), flush=True)
        rows.append(fig.row())
    n, rate, at = args.products, args.rate, args.fault_at
    print(f"\n{n} products, {rate:.0f} corrections/s, the fault {at:.0f} s into them\n")
    print(
        "| fault | corrections sent | overrides present | worker answers with the override "
        "| recovery | app log lines from the fault on | notes |"
    )
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
