"""What a demo run observes (:class:`Tally`), its figures (:class:`DemoResult`), the summary."""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field

import numpy as np

from workers.core.categories import format_path
from workers.core.events import CategorizedEvent
from workers.demo.data import Row
from workers.demo.feedback import Correction
from workers.demo.probes import WorkerFigures
from workers.demo.view import SampleRow, ViewState, render_table

__all__ = ["DemoResult", "Tally", "print_summary", "quantile"]


def quantile(values: list[float], q: float) -> float | None:
    return float(np.percentile(np.asarray(values), q * 100)) if values else None


@dataclass
class Tally:
    """What the threads observe; read and written under ``lock``."""

    sent: int = 0
    received: int = 0
    reviewed: int = 0
    agree: int = 0
    judged: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    sources: Counter[str] = field(default_factory=Counter)
    samples: deque[SampleRow] = field(default_factory=lambda: deque(maxlen=80))
    model_answers: dict[str, tuple[tuple[str, ...], str]] = field(default_factory=dict)
    overrides_seen: Counter[str] = field(default_factory=Counter)
    lag: dict[tuple[str, int], int] | None = None
    max_lag: int = 0
    worker: WorkerFigures | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, ev: CategorizedEvent, produced_at: float, row: Row | None) -> None:
        """Count one categorized event (``row``: the replayed product, if it is one)."""
        path = tuple(ev.category_path)
        agrees = None
        if row is not None and ev.source != "override":
            agrees = path == row.path[: len(path)]
        with self.lock:
            self.received += 1
            self.sources[ev.source] += 1
            self.reviewed += ev.needs_review
            self.latencies_ms.append((produced_at - ev.event_time.timestamp()) * 1000.0)
            if agrees is not None:
                self.judged += 1
                self.agree += agrees
            if ev.source == "model":
                self.model_answers[ev.product_id] = (path, ev.model_version)
            elif ev.source == "override":
                self.overrides_seen[ev.product_id] += 1
            title = row.title if row else ev.product_id
            self.samples.append(
                SampleRow(ev.source, ev.confidence, title, path, ev.needs_review, agrees)
            )

    def view(
        self,
        history: deque[tuple[float, int, int]],
        *,
        run_id: str,
        phase: str,
        started: float,
        target_rate: float,
        notes: tuple[str, ...],
    ) -> ViewState:
        """The live view's figures now; ``history`` keeps ``(time, sent, received)`` of
        the last refreshes, for the rates over the last two seconds."""
        now = time.monotonic()
        with self.lock:
            history.append((now, self.sent, self.received))
            recent = self.latencies_ms[-2000:]
            lag = dict(self.lag) if self.lag is not None else None
            worker = self.worker
            sources = tuple(sorted(self.sources.items()))
            counts = (self.sent, self.received, self.reviewed, self.agree, self.judged)
            samples = tuple(self.samples)
        past = next((h for h in history if h[0] >= now - 2.0), history[0])
        span = max(now - past[0], 1e-9)
        by_topic: dict[str, list[int]] = {}
        for (topic, partition), n in sorted((lag or {}).items()):
            by_topic.setdefault(topic.split(".", 1)[-1], []).insert(partition, n)
        sent, received, reviewed, agree, judged = counts
        return ViewState(
            run_id=run_id,
            phase=phase,
            elapsed_s=now - started,
            target_rate=target_rate,
            sent=sent,
            received=received,
            rate_in=(sent - past[1]) / span if span > 0.2 else 0.0,
            rate_out=(received - past[2]) / span if span > 0.2 else 0.0,
            lag_total=None if lag is None else sum(lag.values()),
            lag_by_topic=tuple((k, tuple(v)) for k, v in by_topic.items()),
            p50_ms=quantile(recent, 0.5),
            p99_ms=quantile(recent, 0.99),
            worker_p99_ms=worker.latency_quantile_ms(0.99) if worker else None,
            cache_hit_ratio=worker.cache_hit_ratio if worker else None,
            sources=sources,
            review_ratio=reviewed / received if received else None,
            agreement=agree / judged if judged else None,
            judged=judged,
            samples=samples,
            notes=notes,
        )


@dataclass
class DemoResult:
    """The figures of one finished demo run (the summary table, as data)."""

    run_id: str
    sent: int
    received: int
    sources: dict[str, int]
    corrected: list[Correction]
    corrections_how: str
    cache_hit_ratio: float | None
    p99_ms: float | None
    max_lag: int
    worker_rc: int | None = None
    feedback_rc: int | None = None
    rows: list[tuple[str, str]] = field(default_factory=list)


def print_summary(result: DemoResult) -> None:
    print()
    for line in render_table("prodcat demo: summary", result.rows):
        print(line)
    for c in result.corrected:
        print(f"  corrected {c.title[:60]}")
        print(f"      model said {format_path(c.wrong)}")
        print(f"      moderator  {format_path(c.right)}")
