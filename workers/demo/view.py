"""The live terminal view of ``prodcat demo``: pure rendering, plus a small writer.

:func:`render_screen` turns one :class:`ViewState` into the lines of a full-screen frame
(plain ANSI, no curses); :func:`render_log_line` is the one-line form used when stdout is
not a terminal (CI, pipes); :func:`render_table` draws the closing summary, wrapped to 80
columns. Widths are counted in terminal cells, so Chinese titles (two cells per character)
line up.

Two latency sources are shown, each named for what it measures: the demo's own reading of
every output (``occurred_at`` of the input to the output's timestamp; the newest 2,000 and
the whole run) and the worker's histogram (``occurred_at`` to the broker's acknowledgement,
since the worker started), given as the bucket its p99 falls in rather than a number
interpolated inside a wide bucket.

:class:`TerminalView` writes frames in place on a terminal (cursor home, erase to end of
line) and falls back to periodic log lines elsewhere.
"""

from __future__ import annotations

import shutil
import time
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TextIO

from workers.demo.queries import QuerySample

__all__ = [
    "SampleRow",
    "TerminalView",
    "ViewState",
    "cell_width",
    "fit",
    "format_bucket",
    "render_log_line",
    "render_screen",
    "render_table",
    "shorten_path",
    "wrap",
]

TABLE_WIDTH = 80
RECENT = 2000
"""Outputs the live view's first latency figures cover (the newest)."""

ELLIPSIS = "…"
_RESET = "\x1b[0m"
_STYLES = {
    "bold": "\x1b[1m",
    "dim": "\x1b[2m",
    "red": "\x1b[31m",
    "green": "\x1b[32m",
    "yellow": "\x1b[33m",
    "magenta": "\x1b[1;35m",
    "cyan": "\x1b[36m",
}
_SOURCE_STYLE = {"cache": "cyan", "override": "magenta"}
_BLANKS = str.maketrans("\t\n\r\v\f", "     ")


@dataclass(frozen=True, slots=True)
class SampleRow:
    """One categorized product in the scrolling sample."""

    source: str  # model, cache or override
    confidence: float
    title: str
    path: tuple[str, ...]
    needs_review: bool
    agrees: bool | None  # on the catalog label's path as far as answered; None: not judged
    exact: bool = False  # the catalog label's leaf itself


@dataclass(frozen=True, slots=True)
class ViewState:
    """Everything one frame shows; built by the demo, rendered here."""

    run_id: str
    phase: str
    elapsed_s: float
    target_rate: float
    sent: int
    received: int
    rate_in: float
    rate_out: float
    lag_total: int | None  # committed offsets of the classify group vs. high watermarks
    lag_by_topic: tuple[tuple[str, tuple[int, ...]], ...]  # topic, lag of partition 0..n-1
    p50_ms: float | None  # observed: input occurred_at to output timestamp, newest RECENT
    p99_ms: float | None
    run_p99_ms: float | None  # observed, every output since the start
    worker_p99_bucket: tuple[float, float] | None  # worker histogram: p99's bucket, seconds
    cache_hit_ratio: float | None  # worker counters: hits / (hits + misses)
    sources: tuple[tuple[str, int], ...]
    review_ratio: float | None
    agreement: float | None  # distinct products: answer on the label's path (as far as it goes)
    exact_agreement: float | None  # distinct products: answer is the label's leaf
    judged: int  # distinct products judged
    samples: tuple[SampleRow, ...]
    notes: tuple[str, ...] = ()
    queries: tuple[QuerySample, ...] = ()  # search queries answered by prodcat serve


# ------------------------------------------------------------------------- text cells


def char_width(ch: str) -> int:
    """Terminal cells of one character: 2 for wide/fullwidth, 0 for combining marks."""
    if unicodedata.combining(ch) or unicodedata.category(ch) in ("Cc", "Cf"):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def cell_width(text: str) -> int:
    """Terminal cells ``text`` takes (no ANSI codes inside)."""
    return sum(char_width(ch) for ch in text)


def fit(text: str, width: int) -> str:
    """``text`` cut to ``width`` cells (ending with an ellipsis when cut) and padded to it."""
    if width <= 0:
        return ""
    text = text.translate(_BLANKS)  # no newlines or tabs inside a cell
    if cell_width(text) > width:
        out: list[str] = []
        used = 0
        for ch in text:
            w = char_width(ch)
            if used + w > width - 1:
                break
            out.append(ch)
            used += w
        text = "".join(out) + ELLIPSIS
    return text + " " * (width - cell_width(text))


def shorten_path(path: Sequence[str], width: int) -> str:
    """A category path in ``width`` cells, keeping the root and the leaf when it can."""
    full = " > ".join(path)
    if cell_width(full) <= width or len(path) < 3:
        return fit(full, width).rstrip()
    short = f"{path[0]} > {ELLIPSIS} > {path[-1]}"
    if cell_width(short) <= width:
        return short
    return fit(short, width).rstrip()


def _paint(text: str, style: str | None, color: bool) -> str:
    if not color or style is None:
        return text
    return f"{_STYLES[style]}{text}{_RESET}"


def _num(value: float | None, fmt: str, unit: str = "") -> str:
    return "–" if value is None else f"{value:{fmt}}{unit}"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def _duration(seconds: float) -> str:
    return f"{seconds * 1000:g} ms" if seconds < 1 else f"{seconds:g} s"


def format_bucket(bucket: tuple[float, float] | None) -> str:
    """A histogram bucket for people: ``100–250 ms``, ``1–2.5 s``, ``over 60 s``."""
    if bucket is None:
        return "–"
    lower, upper = bucket
    if upper == float("inf"):
        return f"over {_duration(lower)}"
    if upper < 1:
        return f"{lower * 1000:g}–{upper * 1000:g} ms"
    return f"{lower:g}–{upper:g} s" if lower >= 1 else f"{_duration(lower)}–{_duration(upper)}"


# ---------------------------------------------------------------------------- frames


def _lag_text(state: ViewState) -> str:
    if state.lag_total is None:
        return "lag        –"
    parts = [f"{topic} [{' '.join(str(n) for n in lags)}]" for topic, lags in state.lag_by_topic]
    return f"lag        {state.lag_total:,} msgs   per partition: " + "   ".join(parts)


def header_lines(state: ViewState, width: int, color: bool) -> list[str]:
    """The figures at the top of a frame."""
    sources = " · ".join(f"{name} {count:,}" for name, count in state.sources) or "–"
    rows = [
        f"prodcat demo · run {state.run_id} · {state.elapsed_s:5.1f} s · {state.phase}",
        "",
        f"events/s   in {state.rate_in:7.1f} (target {state.target_rate:g})"
        f"   out {state.rate_out:7.1f}     sent {state.sent:,}   categorized {state.received:,}",
        _lag_text(state),
        f"latency    newest {RECENT:,}: p50 {_num(state.p50_ms, '.1f', ' ms')}"
        f"  p99 {_num(state.p99_ms, '.1f', ' ms')}   (occurred_at → output)",
        f"           whole run: p99 {_num(state.run_p99_ms, '.1f', ' ms')}"
        f"   worker histogram p99 in {format_bucket(state.worker_p99_bucket)}",
        f"cache      hit ratio {_pct(state.cache_hit_ratio)}   answers by source: {sources}",
        f"quality    needs review {_pct(state.review_ratio)}   catalog label, "
        f"{state.judged:,} distinct products:",
        f"           exact leaf {_pct(state.exact_agreement)}"
        f" · on its path as far as answered {_pct(state.agreement)}",
    ]
    lines = [fit(r, width).rstrip() for r in rows]
    lines[0] = _paint(lines[0], "bold", color)
    lines.extend(_paint(fit("note: " + n, width).rstrip(), "yellow", color) for n in state.notes)
    lines.append(_paint("─" * width, "dim", color))
    return lines


def _columns(width: int) -> tuple[int, int]:
    """Cells of the title and the category columns of a sample line."""
    title_w = max(16, min(56, (width - 26) * 9 // 20))
    return title_w, max(10, width - title_w - 26)


def sample_line(row: SampleRow, width: int, color: bool) -> str:
    """One product of the scrolling sample: source, confidence, title, category, marks."""
    title_w, path_w = _columns(width)
    source = _paint(fit(row.source, 8), _SOURCE_STYLE.get(row.source), color)
    if row.agrees is None:
        mark: tuple[str, str | None] = (" ", None)
    elif row.exact:
        mark = ("✓", "green")  # the catalog's leaf
    elif row.agrees:
        mark = ("~", "yellow")  # on the catalog's path, but not as deep
    else:
        mark = ("✗", "red")
    review = _paint("review", "yellow", color) if row.needs_review else "      "
    return (
        f"{source} {row.confidence:4.2f}  {fit(row.title, title_w)}  "
        f"{fit(shorten_path(row.path, path_w), path_w)} {_paint(mark[0], mark[1], color)} {review}"
    ).rstrip()


def query_lines(queries: Sequence[QuerySample], width: int, color: bool) -> list[str]:
    """The search queries block: ``prodcat serve``'s newest answers to held-out queries."""
    if not queries:
        return []
    query_w = max(12, min(30, width // 4))
    path_w = max(10, width - query_w - 22)
    heading = f"{fit('search query (held-out)', query_w)}  conf  depth  category (prodcat serve)"
    lines = [_paint(fit(heading, width).rstrip(), "dim", color)]
    for q in queries:
        mark = ("✓", "green") if q.agrees else ("✗", "red")
        lines.append(
            f"{fit(q.query, query_w)}  {q.confidence:4.2f}  {q.confident_depth:>5}  "
            f"{fit(shorten_path(q.path, path_w), path_w)} {_paint(mark[0], mark[1], color)}"
        )
    lines.append(_paint("─" * width, "dim", color))
    return lines


def render_screen(state: ViewState, width: int, height: int, color: bool = True) -> list[str]:
    """The lines of one full-screen frame, at most ``height`` of them, none wider than
    ``width`` cells; the newest sample products fill the space left, newest last."""
    width = max(width, 60)
    lines = header_lines(state, width, color)
    lines += query_lines(state.queries, width, color)
    room = height - len(lines)
    if room > 0:
        title_w, path_w = _columns(width)
        heading = (
            f"{'source':8s} conf  {fit('product (catalog test split)', title_w)}  "
            f"{fit('category', path_w)} label"
        )
        lines.append(_paint(fit(heading, width).rstrip(), "dim", color))
        shown = state.samples[-(room - 1) :] if room > 1 else ()
        lines.extend(sample_line(row, width, color) for row in shown)
    return lines[:height]


def render_log_line(state: ViewState) -> str:
    """The one-line form of a frame, for logs and CI."""
    lag = "–" if state.lag_total is None else f"{state.lag_total}"
    return (
        f"[demo {state.elapsed_s:6.1f}s] {state.phase}: sent {state.sent} "
        f"categorized {state.received}  in {state.rate_in:.0f}/s out {state.rate_out:.0f}/s  "
        f"lag {lag}  p99 {_num(state.p99_ms, '.0f', ' ms')} (newest {RECENT:,})  "
        f"cache hits {_pct(state.cache_hit_ratio)}"
    )


def wrap(text: str, width: int) -> list[str]:
    """``text`` in lines of at most ``width`` cells, broken at spaces where it can (a word
    longer than a line is cut); at least one line."""
    width = max(width, 1)
    lines: list[str] = []
    current = ""
    for word in text.translate(_BLANKS).split(" "):
        candidate = f"{current} {word}" if current else word
        if cell_width(candidate) <= width:
            current = candidate
            continue
        if current:
            lines.append(current)
        rest = word
        while cell_width(rest) > width:  # a long word (a Chinese title has no spaces)
            cut, used = [], 0
            for ch in rest:
                if used + char_width(ch) > width:
                    break
                cut.append(ch)
                used += char_width(ch)
            lines.append("".join(cut))
            rest = rest[len(cut) :]
        current = rest
    lines.append(current)
    return lines


def render_table(
    title: str, rows: Sequence[tuple[str, str]], width: int = TABLE_WIDTH
) -> list[str]:
    """A boxed two-column table (label, value) at most ``width`` cells wide: a value that
    does not fit is wrapped onto more lines of its row. Widths are counted in cells."""
    left = min(max([cell_width(k) for k, _ in rows] + [1]), (width - 7) // 2)
    natural = max([cell_width(v) for _, v in rows] + [cell_width(title) - left - 3, 1])
    right = max(min(natural, width - left - 7), 1)
    bar = "─" * (left + 2), "─" * (right + 2)
    out = [f"┌{bar[0]}─{bar[1]}┐"]
    out += [f"│ {fit(line, left + right + 3)} │" for line in wrap(title, left + right + 3)]
    out.append(f"├{bar[0]}┬{bar[1]}┤")
    for key, value in rows:
        keys, values = wrap(key, left), wrap(value, right)
        for n in range(max(len(keys), len(values))):
            k = keys[n] if n < len(keys) else ""
            v = values[n] if n < len(values) else ""
            out.append(f"│ {fit(k, left)} │ {fit(v, right)} │")
    out.append(f"└{bar[0]}┴{bar[1]}┘")
    return out


# ---------------------------------------------------------------------------- writer


class TerminalView:
    """Writes frames in place on a terminal, or a log line every ``log_every_s`` elsewhere."""

    def __init__(
        self, out: TextIO, interactive: bool | None = None, log_every_s: float = 2.0
    ) -> None:
        self.out = out
        self.interactive = out.isatty() if interactive is None else interactive
        self.log_every_s = log_every_s
        self._last_log = float("-inf")
        self._last_sample: SampleRow | None = None
        self._notes_shown: set[str] = set()
        self._started = False

    def update(self, state: ViewState, force: bool = False) -> None:
        if self.interactive:
            if not self._started:
                self.out.write("\x1b[?25l\x1b[2J")  # hide the cursor, clear once
                self._started = True
            size = shutil.get_terminal_size((120, 40))
            lines = render_screen(state, size.columns, size.lines - 1)
            self.out.write("\x1b[H" + "\x1b[K\n".join(lines) + "\x1b[K\n\x1b[J")
        else:
            now = time.monotonic()
            if not force and now - self._last_log < self.log_every_s:
                return
            self._last_log = now
            for note in state.notes:
                if note not in self._notes_shown:
                    self._notes_shown.add(note)
                    self.out.write(f"note: {note}\n")
            self.out.write(render_log_line(state) + "\n")
            if state.samples and state.samples[-1] is not self._last_sample:
                self._last_sample = state.samples[-1]
                self.out.write("    " + sample_line(state.samples[-1], 116, False) + "\n")
        self.out.flush()

    def close(self) -> None:
        """Give the cursor back; the last frame stays on screen."""
        if self.interactive and self._started:
            self.out.write("\x1b[?25h")
            self.out.flush()
