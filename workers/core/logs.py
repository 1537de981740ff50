"""Logging set-up: plain text for people, or one JSON object per line; repeats held back.

:func:`setup_logging` installs one handler on the root logger, so everything lands there:
prodcat's own loggers, librdkafka's lines (every confluent-kafka client prodcat builds
names the ``prodcat.kafka`` logger, :mod:`workers.kafka.clients`) and the feedback app's
faust and aiokafka loggers.

The handler carries a :class:`RepeatFilter`. A broker outage makes every client retry,
and each retry used to be a line: hundreds a second, the one line that said what was
wrong lost among them. The filter lets the first of a run of like lines through, holds
back the rest for a window, and then says once how many it held back
(``... (repeated 212 more times in 30 s)``). Components log one line per state change
themselves ("no broker reachable", "reachable again after 12.3 s"), and call
:func:`flush_repeats` first so the count comes before the recovery line.
"""

from __future__ import annotations

import atexit
import json
import logging
import re
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

__all__ = [
    "LOOSE_LOGGERS",
    "JsonFormatter",
    "RepeatFilter",
    "flush_repeats",
    "setup_logging",
]

_EXTRA_KEYS = (
    "topic", "partition", "offset", "product_id", "model_version", "error_class", "http",
)  # fmt: skip

REPEAT_WINDOW_S: Final = 30.0
"""How long like lines are held back after the first one is shown."""
LOOSE_LOGGERS: Final = ("prodcat.kafka", "aiokafka", "kafka", "faust", "mode")
"""Third-party client loggers whose lines differ only in numbers while they say the same
thing (``Connect to ... failed (after 0ms ...)`` / ``(after 12ms ...)``): for these,
lines that are equal once every run of digits is ignored count as repeats. prodcat's own
lines must be equal to the letter (``assigned t[0]`` and ``assigned t[1]`` both show)."""
MAX_KEYS: Final = 1000
_SCAN_INTERVAL_S: Final = 1.0
"""Ended runs are looked for at most this often (not on every record that passes)."""
_DIGITS = re.compile(r"\d+")
_SUMMARY = "_prodcat_repeat_summary"


class JsonFormatter(logging.Formatter):
    """One JSON object per record, with Kafka coordinates when the record has them."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key in _EXTRA_KEYS:
            if hasattr(record, key):
                data[key] = getattr(record, key)
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False)


@dataclass(slots=True)
class _Run:
    """Like records since ``since``: the first was shown, ``held`` were not."""

    since: float
    held: int = 0
    last: logging.LogRecord | None = None


class RepeatFilter(logging.Filter):
    """Shows the first of like records, holds back the ones within ``window_s`` after it,
    then reports how many it held back.

    Records are alike when logger, level and message are equal (for the
    :data:`LOOSE_LOGGERS`, equal but for numbers). A held-back run is reported by one
    summary record (the last held-back message, ``(repeated N more times in S s)``) when a
    later record passes the filter after the run's window ended, or at :meth:`flush`.
    Summaries go to ``emit`` (the handler's ``handle``; :meth:`attach` sets it).
    Thread-safe; records of the filter's own summaries pass unchanged.
    """

    def __init__(
        self,
        window_s: float = REPEAT_WINDOW_S,
        *,
        loose: tuple[str, ...] = LOOSE_LOGGERS,
        clock: Callable[[], float] = time.time,
        emit: Callable[[logging.LogRecord], object] | None = None,
        max_keys: int = MAX_KEYS,
    ) -> None:
        super().__init__()
        self.window_s = window_s
        self.loose = loose
        self.clock = clock
        self.emit = emit
        self.max_keys = max_keys
        self.held_total = 0
        self._runs: dict[tuple[str, int, str], _Run] = {}
        self._loose_names: dict[str, bool] = {}
        self._scanned = 0.0
        self._lock = threading.Lock()

    def attach(self, handler: logging.Handler) -> RepeatFilter:
        """Filter ``handler``'s records and send the summaries through it."""
        handler.addFilter(self)
        self.emit = handler.handle
        return self

    def _loose(self, name: str) -> bool:
        found = self._loose_names.get(name)
        if found is None:
            found = self._loose_names[name] = any(
                name == p or name.startswith(p + ".") for p in self.loose
            )
        return found

    def _key(self, record: logging.LogRecord) -> tuple[str, int, str]:
        try:
            text = record.getMessage()
        except Exception:  # a bad format string is the handler's to report, not ours
            text = str(record.msg)
        if self._loose(record.name):
            text = _DIGITS.sub("#", text)
        return record.name, record.levelno, text

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, _SUMMARY, False):
            return True
        now = self.clock()
        key = self._key(record)
        with self._lock:
            due = self._due(now, skip=key)
            run = self._runs.get(key)
            if run is not None and now - run.since < self.window_s:
                run.held += 1
                run.last = record
                self.held_total += 1
                shown = False
            else:
                if run is not None and run.held:
                    due.append(self._summary(run, now))
                self._runs[key] = _Run(now)
                shown = True
        self._send(due)
        return shown

    def flush(self) -> None:
        """Report every held-back run now, whether or not its window has ended."""
        now = self.clock()
        with self._lock:
            due = [self._summary(run, now) for run in self._runs.values() if run.held]
            self._runs.clear()
        self._send(due)

    def _due(self, now: float, *, skip: tuple[str, int, str]) -> list[logging.LogRecord]:
        """Summaries of the runs whose window ended (those runs are dropped)."""
        if len(self._runs) >= self.max_keys:  # a flood of distinct lines: report them all
            ended = [k for k in self._runs if k != skip]
        elif now - self._scanned >= _SCAN_INTERVAL_S:
            self._scanned = now
            window = self.window_s
            ended = [k for k, run in self._runs.items() if k != skip and now - run.since >= window]
        else:
            return []
        due: list[logging.LogRecord] = []
        for k in ended:
            run = self._runs.pop(k)
            if run.held:
                due.append(self._summary(run, now))
        return due

    def _summary(self, run: _Run, now: float) -> logging.LogRecord:
        last = run.last
        assert last is not None
        try:
            text = last.getMessage()
        except Exception:
            text = str(last.msg)
        summary = logging.makeLogRecord(last.__dict__)
        summary.msg = "%s (repeated %d more times in %.0f s)"
        summary.args = (text, run.held, max(now - run.since, 1.0))
        summary.exc_info = None
        summary.exc_text = None
        summary.created = now
        summary.msecs = (now - int(now)) * 1000.0
        setattr(summary, _SUMMARY, True)
        return summary

    def _send(self, due: list[logging.LogRecord]) -> None:
        emit = self.emit
        if emit is not None:
            for summary in due:
                emit(summary)


def flush_repeats() -> None:
    """Report the lines held back so far by the root handlers' filters (before a recovery
    line, and at exit)."""
    for handler in logging.getLogger().handlers:
        if getattr(getattr(handler, "stream", None), "closed", False):
            continue  # e.g. at exit, after a test harness closed its capture stream
        for found in handler.filters:
            if isinstance(found, RepeatFilter):
                found.flush()


def setup_logging(
    level: str = "INFO", json_lines: bool = False, *, repeat_window_s: float = REPEAT_WINDOW_S
) -> None:
    """One stderr handler on the root logger, plain or JSON lines, with a
    :class:`RepeatFilter` (``repeat_window_s=0`` shows every line)."""
    handler = logging.StreamHandler(sys.stderr)
    if json_lines:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")
        )
    if repeat_window_s > 0:
        RepeatFilter(repeat_window_s).attach(handler)
        atexit.unregister(flush_repeats)  # once, however often logging is set up
        atexit.register(flush_repeats)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
