"""What a demo run observes (:class:`Tally`), its figures (:class:`DemoResult`), the summary."""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field

import numpy as np

from workers.core.events import CategorizedEvent
from workers.demo.data import Row
from workers.demo.feedback import Correction
from workers.demo.probes import WorkerFigures
from workers.demo.view import (
    RECENT,
    TABLE_WIDTH,
    SampleRow,
    ViewState,
    fit,
    format_bucket,
    render_table,
    shorten_path,
    wrap,
)

__all__ = ["DemoResult", "Tally", "print_summary", "quantile", "summary_lines", "summary_rows"]


def quantile(values: list[float], q: float) -> float | None:
    return float(np.percentile(np.asarray(values), q * 100)) if values else None


@dataclass
class Tally:
    """What the threads observe; read and written under ``lock``."""

    sent: int = 0
    received: int = 0
    reviewed: int = 0
    # product -> (answer on the label's path as far as it goes, answer is the label's leaf),
    # for the newest model or cache answer: each product counts once, repeats do not
    judgements: dict[str, tuple[bool, bool]] = field(default_factory=dict)
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
        exact = False
        if row is not None and ev.source != "override":
            agrees = path == row.path[: len(path)]
            exact = path == row.path
        with self.lock:
            self.received += 1
            self.sources[ev.source] += 1
            self.reviewed += ev.needs_review
            self.latencies_ms.append((produced_at - ev.event_time.timestamp()) * 1000.0)
            if agrees is not None:
                self.judgements[ev.product_id] = (agrees, exact)
            if ev.source == "model":
                self.model_answers[ev.product_id] = (path, ev.model_version)
            elif ev.source == "override":
                self.overrides_seen[ev.product_id] += 1
            title = row.title if row else ev.product_id
            self.samples.append(
                SampleRow(ev.source, ev.confidence, title, path, ev.needs_review, agrees, exact)
            )

    def agreement(self) -> tuple[int, int, int]:
        """(distinct products judged, on the label's path, exactly the label's leaf); call
        under ``lock``."""
        judged = self.judgements.values()
        return len(judged), sum(a for a, _ in judged), sum(e for _, e in judged)

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
            recent = self.latencies_ms[-RECENT:]
            run_p99 = quantile(self.latencies_ms, 0.99)
            lag = dict(self.lag) if self.lag is not None else None
            worker = self.worker
            sources = tuple(sorted(self.sources.items()))
            judged, agree, exact = self.agreement()
            counts = (self.sent, self.received, self.reviewed)
            samples = tuple(self.samples)
        past = next((h for h in history if h[0] >= now - 2.0), history[0])
        span = max(now - past[0], 1e-9)
        by_topic: dict[str, list[int]] = {}
        for (topic, partition), n in sorted((lag or {}).items()):
            by_topic.setdefault(topic.split(".", 1)[-1], []).insert(partition, n)
        sent, received, reviewed = counts
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
            run_p99_ms=run_p99,
            worker_p99_bucket=worker.latency_bucket(0.99) if worker else None,
            cache_hit_ratio=worker.cache_hit_ratio if worker else None,
            sources=sources,
            review_ratio=reviewed / received if received else None,
            agreement=agree / judged if judged else None,
            exact_agreement=exact / judged if judged else None,
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
    p99_ms: float | None  # every output of the run, occurred_at to output timestamp
    max_lag: int
    judged: int = 0  # distinct products with a model (or cache) answer and a catalog label
    agreement: float | None = None  # on the label's path as far as answered
    exact_agreement: float | None = None  # the label's leaf
    worker_p99_bucket: tuple[float, float] | None = None  # seconds
    worker_rc: int | None = None
    feedback_rc: int | None = None
    rows: list[tuple[str, str]] = field(default_factory=list)


LATENCY_NOTE = (
    "latency: each input's occurred_at to its output's timestamp, over every output of "
    "the run (start-up included; the live view's first figures cover the newest "
    f"{RECENT:,}); the worker's histogram measures to the broker's acknowledgement since "
    "the worker started and only knows the bucket its p99 falls in."
)


def summary_lines(result: DemoResult, width: int = TABLE_WIDTH) -> list[str]:
    """The closing summary: the table, the note on latency and the corrections, every
    line at most ``width`` cells."""
    lines = ["", *render_table("prodcat demo: summary", result.rows, width)]
    lines += wrap_note(LATENCY_NOTE, width)
    for c in result.corrected:
        lines.append(fit(f"  corrected {c.title}", width).rstrip())
        lines.append("      model said " + shorten_path(c.wrong, width - 17))
        lines.append("      moderator  " + shorten_path(c.right, width - 17))
    return lines


def wrap_note(text: str, width: int) -> list[str]:
    return [line.rstrip() for line in wrap(text, width)]


def print_summary(result: DemoResult) -> None:
    for line in summary_lines(result):
        print(line)


def summary_rows(
    result: DemoResult,
    *,
    bundle: str,
    products: str,
    p50_ms: float | None,
    review_ratio: float,
    elapsed_s: float,
) -> list[tuple[str, str]]:
    """The rows of the summary table of ``result``."""
    judged = result.judged
    sources = " · ".join(f"{k} {v:,}" for k, v in sorted(result.sources.items()))
    return [
        ("bundle", bundle),
        ("products", products),
        ("events in / out", f"{result.sent:,} / {result.received:,}"),
        ("answers by source", sources),
        ("latency p50, whole run", _ms(p50_ms)),
        ("latency p99, whole run", _ms(result.p99_ms)),
        ("worker histogram p99", f"in the {format_bucket(result.worker_p99_bucket)} bucket"),
        ("max consumer lag", f"{result.max_lag:,} messages"),
        ("cache hit ratio", _pct(result.cache_hit_ratio)),
        ("needs review", f"{review_ratio:.1%}"),
        (
            "catalog label: exact leaf",
            f"{_pct(result.exact_agreement)} of {judged:,} distinct products",
        ),
        ("on its path, as far as answered", _pct(result.agreement)),
        ("corrections", f"{len(result.corrected)}, {result.corrections_how}"),
        ("run time", f"{elapsed_s:.1f} s, topics to last output"),
    ]


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f} ms"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"
