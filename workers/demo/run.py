"""``prodcat demo``: the whole loop on real catalog data, in one command.

1. checks Kafka and Redis (``deploy/local/demo`` starts the local stack first);
2. uses ``--bundle`` or trains a small bundle on English and Chinese catalogs with
   ``prodcat train`` (cached under ``var/demo`` for the next run);
3. starts a classify worker process (and the feedback app, once it exists) on
   demo-only topics, consumer groups and Redis keys;
4. replays real held-out products at ``--rate``: the bundle's own test split, from
   ``prodcat heldout`` (:mod:`workers.demo.data`);
5. shows a live view (:mod:`workers.demo.view`): events/s in and out, consumer
   lag per partition, p99 latency, cache hit ratio and a scrolling sample of
   products with their categories (:mod:`workers.demo.probes` measures);
6. replays some products unchanged (answered from the cache) and sends a few
   scripted moderator corrections as ``category.feedback`` events
   (:mod:`workers.demo.feedback`), so the override path is visible;
7. stops its processes (SIGTERM, drain), deletes its topics and Redis keys and
   prints a summary, leaving nothing running.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from confluent_kafka import (
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    Producer,
)

from workers.core.codec import Codec
from workers.core.errors import ProdcatError
from workers.core.events import CategorizedEvent
from workers.core.settings import Settings
from workers.demo.data import Row, held_out_rows, train_bundle
from workers.demo.feedback import Correction, CorrectionPath, pick_corrections
from workers.demo.probes import LagProbe, scrape_worker
from workers.demo.producer import replay_rows
from workers.demo.queries import QueryPanel, ensure_query_bundle
from workers.demo.sandbox import Sandbox, free_port, wait_ready
from workers.demo.tally import DemoResult, Tally, print_summary, quantile, summary_rows
from workers.demo.view import TerminalView, ViewState
from workers.kafka.clients import reader_config, writer_config
from workers.process.connectivity import check_kafka, check_redis


def ensure_bundle(settings: Settings, args: argparse.Namespace) -> Path:
    """``--bundle``, else the demo bundle trained earlier, else one trained now."""
    if args.bundle:
        return Path(args.bundle)
    root = Path("var/demo/bundles")
    datasets = tuple(args.datasets)
    cached = root / f"demo-{'-'.join(datasets)}-{args.train_rows}"
    if (cached / "manifest.json").is_file():
        print(f"using the demo bundle trained earlier: {cached}")
        return cached
    print(f"training a demo bundle on {', '.join(datasets)} ({args.train_rows} rows each)…")
    return train_bundle(settings, datasets, args.train_rows, root)


class Demo:
    """One demo run: its topics, its worker processes, its threads and its view."""

    def __init__(
        self,
        settings: Settings,
        args: argparse.Namespace,
        bundle: Path,
        queries: tuple[Path, Path] | None = None,
    ) -> None:
        self.settings = settings
        self.args = args
        self.bundle = bundle
        self.run_id = uuid.uuid4().hex[:8]
        self.codec = Codec(settings.classify.max_payload_bytes)
        self.sandbox = Sandbox(settings, self.run_id, bundle)
        self.env = self.sandbox.env
        self.tally = Tally()
        self.rows_by_id: dict[str, Row] = {}
        self.stop = threading.Event()
        self.phase = "starting"
        self.started = time.monotonic()
        self.history: deque[tuple[float, int, int]] = deque(maxlen=64)
        self.view = TerminalView(sys.stdout)
        self.corrections = CorrectionPath(
            {**self.env, "PRODCAT_METRICS_PORT": str(free_port())},
            settings.kafka,
            settings.redis.url,
            self.codec,
        )
        self.worker: subprocess.Popen[bytes] | None = None
        self.threads: list[threading.Thread] = []
        self.panel = QueryPanel(self.sandbox, bundle, *queries) if queries else None

    # -------------------------------------------------------------- output side
    def watch(self) -> None:
        """Read the categorized topic, as a downstream service would."""
        consumer = Consumer(
            reader_config(self.settings.kafka, "demo-watch", group_id=f"demo-{self.run_id}-watch")
        )
        consumer.subscribe([self.env["PRODCAT_TOPICS_CATEGORIZED"]])
        try:
            while not self.stop.is_set():
                for msg in consumer.consume(500, 0.05):
                    if msg.error() is None:
                        kind, stamp = msg.timestamp()
                        ev = self.codec.decode(msg.value(), CategorizedEvent)
                        at = stamp / 1000.0 if kind != TIMESTAMP_NOT_AVAILABLE else time.time()
                        self.record(ev, at)
        finally:
            consumer.close()

    def record(self, ev: CategorizedEvent, produced_at: float) -> None:
        self.tally.record(ev, produced_at, self.rows_by_id.get(ev.product_id))

    def probe(self) -> None:
        """Every 0.5 s: the classify group's lag and the worker's /metrics."""
        topics = [
            self.env["PRODCAT_TOPICS_PRODUCT_CREATED"],
            self.env["PRODCAT_TOPICS_PRODUCT_UPDATED"],
        ]
        lag_probe = LagProbe(self.settings.kafka, self.env["PRODCAT_CLASSIFY_GROUP_ID"], topics)
        port = self.sandbox.metrics_port
        try:
            while not self.stop.wait(0.5):
                lag = lag_probe.read(timeout_s=1.0)
                figures = scrape_worker(port)
                with self.tally.lock:
                    if lag is not None:
                        self.tally.lag = lag
                        self.tally.max_lag = max(self.tally.max_lag, sum(lag.values()))
                    if figures is not None:
                        self.tally.worker = figures
        finally:
            lag_probe.close()

    # --------------------------------------------------------------- input side
    def replay(self, rows: list[Row], event_type: str) -> None:
        topic = self.env[
            "PRODCAT_TOPICS_PRODUCT_CREATED"
            if event_type == "product.created"
            else "PRODCAT_TOPICS_PRODUCT_UPDATED"
        ]
        producer = Producer(writer_config(self.settings.kafka, "demo-replay", linger_ms=5))
        replay_rows(
            producer,
            topic,
            rows,
            event_type,
            rate=self.args.rate,
            codec=self.codec,
            stop=self.stop,
            sent=self.count_sent,
        )

    def count_sent(self) -> None:
        with self.tally.lock:
            self.tally.sent += 1

    # ------------------------------------------------------------------- view
    def state(self) -> ViewState:
        view = self.tally.view(
            self.history,
            run_id=self.run_id,
            phase=self.phase,
            started=self.started,
            target_rate=self.args.rate,
            notes=tuple(self.corrections.notes),
        )
        return replace(view, queries=self.panel.shown()) if self.panel is not None else view

    def wait_until(self, done: Callable[[], bool], phase: str, timeout_s: float) -> None:
        """Refresh the view twice a second until ``done()``; raise after ``timeout_s``."""
        self.phase = phase
        deadline = time.monotonic() + timeout_s
        while not done():
            if self.worker is not None and self.worker.poll() is not None:
                raise ProdcatError(
                    f"the classify worker exited with {self.worker.returncode}"
                    f"{self.sandbox.log_tail('classify')}"
                )
            if time.monotonic() > deadline:
                raise ProdcatError(
                    f"{phase}: not done after {timeout_s:.0f} s "
                    f"({self.tally.received} outputs of {self.tally.sent} inputs)"
                )
            self.view.update(self.state())
            time.sleep(0.5)
        self.view.update(self.state(), force=True)

    def feedback_caught_up(self) -> Callable[[], bool]:
        """True once the feedback app's group has committed every product and prediction
        event so far (always True when the app is not run)."""
        if self.corrections.app is None:
            return lambda: True
        env = self.env
        topics = [
            env["PRODCAT_TOPICS_PRODUCT_CREATED"],
            env["PRODCAT_TOPICS_PRODUCT_UPDATED"],
            env["PRODCAT_TOPICS_CATEGORIZED"],
        ]
        probe = LagProbe(self.settings.kafka, env["PRODCAT_FEEDBACK_APP_ID"], topics)

        def done() -> bool:
            lag = probe.read(timeout_s=1.0)
            if lag is None or sum(lag.values()) > 0:
                return False
            probe.close()
            return True

        return done

    def received_at_least(self, n: int) -> Callable[[], bool]:
        return lambda: self.tally.received >= n

    # ------------------------------------------------------------------- run
    def start(self) -> None:
        self.started = time.monotonic()
        print(f"creating the run's topics (demo-{self.run_id}.*)…", flush=True)
        self.sandbox.create()
        print(f"starting a classify worker on {self.bundle.name}…", flush=True)
        self.worker = self.sandbox.spawn(
            "classify", [sys.executable, "-m", "workers.cli", "classify"], self.env
        )
        self.corrections.start(self.sandbox.spawn)
        try:
            wait_ready(self.sandbox.metrics_port, self.worker)
        except ProdcatError as exc:
            raise ProdcatError(f"{exc}{self.sandbox.log_tail('classify')}") from None
        if self.panel is not None:  # prodcat serve answers a few search queries on screen
            self.panel.start()
            self.panel.wait_ready()
            ask = threading.Thread(target=self.panel.ask, args=(self.stop,), daemon=True)
            ask.start()
            self.threads.append(ask)
        for target in (self.watch, self.probe):
            thread = threading.Thread(target=target, daemon=True)
            thread.start()
            self.threads.append(thread)

    def run(self, rows: list[Row]) -> DemoResult:
        self.rows_by_id = {r.product_id: r for r in rows}
        self.start()
        rate = self.args.rate
        feeder = threading.Thread(target=self.replay, args=(rows, "product.created"), daemon=True)
        feeder.start()
        self.wait_until(
            self.received_at_least(len(rows)),
            f"1/3 new products, English + Chinese, at {rate:g}/s",
            timeout_s=120 + len(rows) / rate,
        )
        again = rows[: max(1, len(rows) // 5)]
        feeder = threading.Thread(target=self.replay, args=(again, "product.updated"), daemon=True)
        feeder.start()
        expected = len(rows) + len(again)
        self.wait_until(
            self.received_at_least(expected),
            "2/3 the same products again, unchanged: answered from the Redis cache",
            timeout_s=120 + len(again) / rate,
        )
        skip = {r.product_id for r in again}
        with self.tally.lock:
            answers = dict(self.tally.model_answers)
        fixes = pick_corrections(rows, answers, skip, self.args.corrections)
        # The app reads products, predictions and feedback from different topics; feedback
        # for a product it has not read yet waits (parked) until it has: let it catch up
        # first, so the corrections take effect at once on screen.
        self.wait_until(
            self.feedback_caught_up(),
            "3/3 waiting for the feedback app to read the products and predictions",
            timeout_s=120,
        )
        self.phase = f"3/3 a moderator corrects {len(fixes)} products"
        self.view.update(self.state(), force=True)
        self.corrections.apply(fixes)
        fixed_rows = [self.rows_by_id[c.product_id] for c in fixes]
        self.replay(fixed_rows, "product.updated")
        fixed = [c.product_id for c in fixes]
        self.wait_until(
            lambda: all(self.tally.overrides_seen[p] for p in fixed),
            "3/3 the corrected products, updated: answered by the override",
            timeout_s=120,
        )
        return self.result(fixes)

    def result(self, fixes: list[Correction]) -> DemoResult:
        with self.tally.lock:
            t = self.tally
            latencies = list(t.latencies_ms)
            judged, agree, exact = t.agreement()
            res = DemoResult(
                run_id=self.run_id,
                sent=t.sent,
                received=t.received,
                sources=dict(t.sources),
                corrected=fixes,
                corrections_how=self.corrections.how,
                cache_hit_ratio=t.worker.cache_hit_ratio if t.worker else None,
                p99_ms=quantile(latencies, 0.99),
                max_lag=t.max_lag,
                judged=judged,
                agreement=agree / judged if judged else None,
                exact_agreement=exact / judged if judged else None,
                worker_p99_bucket=t.worker.latency_bucket(0.99) if t.worker else None,
            )
            reviewed = t.reviewed
        langs = Counter(r.dataset for r in self.rows_by_id.values())
        res.rows = summary_rows(
            res,
            bundle=self.bundle.name,
            products=", ".join(f"{n} from {name}" for name, n in sorted(langs.items())),
            p50_ms=quantile(latencies, 0.5),
            review_ratio=reviewed / max(res.received, 1),
            elapsed_s=time.monotonic() - self.started,
        )
        return res

    # ---------------------------------------------------------------- cleanup
    def shutdown(self, result: DemoResult | None) -> None:
        """Stop everything this run started: threads, worker processes, topics, keys."""
        self.stop.set()
        worker_rc: int | None = None
        if self.worker is not None:
            if self.worker.poll() is None:
                self.worker.send_signal(signal.SIGTERM)
            try:
                worker_rc = self.worker.wait(timeout=self.settings.classify.drain_timeout_s + 10)
            except subprocess.TimeoutExpired:
                self.worker.kill()
                worker_rc = self.worker.wait()
        feedback_rc = self.corrections.stop()
        serve_rc = self.panel.stop() if self.panel is not None else None
        for thread in self.threads:
            thread.join(timeout=5)
        self.view.close()
        self.sandbox.destroy()
        if result is not None:
            result.worker_rc, result.feedback_rc = worker_rc, feedback_rc
        stopped = f"classify worker exited with {worker_rc}"
        if self.corrections.app is not None:
            stopped += f", feedback app with {feedback_rc}"
        if self.panel is not None:
            stopped += f", prodcat serve with {serve_rc} ({self.panel.summary()})"
        print(f"\n{stopped}; demo topics and Redis keys removed; nothing left running")
        if result is not None and worker_rc == 0 and feedback_rc in (None, 0):
            self.sandbox.remove_logs()
        else:
            print(f"their logs are kept in {self.sandbox.log_dir}/{self.sandbox.prefix}-*.log")


def execute(args: argparse.Namespace, settings: Settings) -> DemoResult:
    """The demo without its summary: returns the figures once everything is stopped."""
    if args.rate <= 0 or args.count < 1 or (args.duration is not None and args.duration <= 0):
        raise ProdcatError("prodcat demo: --rate, --count and --duration must be positive")
    check_kafka(settings, 10.0)
    check_redis(settings, 5.0)
    bundle = ensure_bundle(settings, args)
    queries = None if args.no_queries else ensure_query_bundle(settings, args)
    count = int(args.rate * args.duration) if args.duration else args.count
    print(f"picking {count} products {bundle.name} never saw in training…", flush=True)
    rows = held_out_rows(settings, bundle, count)
    demo = Demo(settings, args, bundle, queries)
    result: DemoResult | None = None
    try:
        result = demo.run(rows)
    finally:
        demo.shutdown(result)
    return result


def _stop_on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # the same clean shutdown as Ctrl-C


def run_demo(args: argparse.Namespace, settings: Settings) -> int:
    """``prodcat demo``: SIGTERM stops it as cleanly as Ctrl-C."""
    previous = signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        result = execute(args, settings)
    finally:
        signal.signal(signal.SIGTERM, previous)
    print_summary(result)
    return 0 if result.worker_rc == 0 else 1
