"""The feedback app's Redis: override writes that wait for it, and a probe that watches it.

Redis is where the classify worker reads overrides, but it is not their record: the
``products`` table (changelogged in Kafka) is. :class:`RedisLink` is the app's one way to
Redis:

* :meth:`RedisLink.write_override` sets a product's override and, when Redis does not
  answer, retries until it does: it waits for the probe to see Redis answer again, at most a
  short capped back-off (:data:`BACKOFF_MAX_S`), never blind for long;
* :meth:`RedisLink.run` probes Redis every ``PRODCAT_FEEDBACK_REDIS_PROBE_INTERVAL_S`` (a
  few times a second while it is down) with ``INFO server``, keeping whether it answers and
  its ``run_id``: a new run id means Redis restarted, so what it held may be gone
  (:mod:`workers.feedback.restore` acts on that);
* one lock orders the live override writes and the restorer's writes, and
  :meth:`RedisLink.writing` marks a product whose new override is being written and not yet
  in the table, so a restore never puts back the value it replaces.

Logging: one line when Redis stops answering, one when it answers again (with how long it
was away); the retries in between log at DEBUG.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Final

import redis
import redis.asyncio as aioredis

from workers.core.overrides import override_key
from workers.feedback.metrics import FeedbackMetrics

__all__ = ["BACKOFF_INITIAL_S", "BACKOFF_MAX_S", "RedisLink"]

log = logging.getLogger(__name__)

BACKOFF_INITIAL_S: Final = 0.1
BACKOFF_MAX_S: Final = 1.0
"""Longest wait between two tries of a write (the probe usually wakes it sooner)."""
DOWN_PROBE_INTERVAL_S: Final = 0.2
"""Probe interval while Redis does not answer (when shorter than the configured one)."""


class RedisLink:
    """See the module docstring. ``shown`` is the Redis URL without its password."""

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        prefix: str,
        shown: str,
        probe_interval_s: float,
        metrics: FeedbackMetrics,
        stop_event: asyncio.Event,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.shown = shown
        self.probe_interval_s = probe_interval_s
        self.metrics = metrics
        self.stop_event = stop_event
        self.clock = clock
        self.lock = asyncio.Lock()
        """Held by every override write, live or restored (see the module docstring)."""
        self.run_id: str | None = None
        """The Redis server's run id at the last successful probe (None: not known)."""
        self.probed = asyncio.Event()
        """Set after each probe that found Redis answering (the restorer waits on it)."""
        self._available = False
        self._answered = asyncio.Event()
        self._down_since: float | None = None
        self._writing: Counter[str] = Counter()

    @property
    def available(self) -> bool:
        """Whether Redis answered the last command or probe."""
        return self._available

    # ------------------------------------------------------------------ state changes

    def mark_up(self) -> None:
        if not self._available:
            if self._down_since is not None:
                log.info(
                    "Redis at %s answers again (after %.1f s); writing overrides",
                    self.shown,
                    self.clock() - self._down_since,
                )
            self._down_since = None
        self._available = True
        self.metrics.redis_available.set(1)
        self._answered.set()

    def mark_down(self, what: str, exc: BaseException) -> None:
        self.metrics.redis_errors.inc()
        self._answered.clear()
        if self._available or self._down_since is None:
            self._down_since = self.clock()
            log.warning(
                "Redis at %s does not answer (%s: %s: %s); overrides wait until it does, "
                "probing every %.1f s",
                self.shown,
                what,
                type(exc).__name__,
                exc,
                self._probe_delay(up=False),
            )
        else:
            log.debug("Redis at %s still does not answer (%s: %s)", self.shown, what, exc)
        self._available = False
        self.metrics.redis_available.set(0)

    # ------------------------------------------------------------------ writes

    @contextlib.contextmanager
    def writing(self, product_id: str) -> Iterator[None]:
        """Mark ``product_id``'s override as being replaced until the block ends (wrap the
        Redis write and the table update: a restore skips the product meanwhile)."""
        self._writing[product_id] += 1
        try:
            yield
        finally:
            self._writing[product_id] -= 1
            if not self._writing[product_id]:
                del self._writing[product_id]

    def busy(self, product_id: str) -> bool:
        return product_id in self._writing

    async def write_override(self, product_id: str, value: bytes) -> None:
        """SET the override (no expiry), retried until Redis takes it. Raises
        :class:`asyncio.CancelledError` when the app stops first (the input is then not
        processed, and redelivered after a restart)."""
        key = override_key(self.prefix, product_id)
        delay = BACKOFF_INITIAL_S
        while True:
            try:
                async with self.lock:
                    await self.client.set(key, value)
            except (redis.RedisError, OSError) as exc:
                self.mark_down(f"writing {key}", exc)
            else:
                self.mark_up()
                return
            if self.stop_event.is_set():
                raise asyncio.CancelledError  # not processed: redelivered after restart
            await self._wait_answer(delay)
            delay = min(delay * 2, BACKOFF_MAX_S)

    async def _wait_answer(self, timeout_s: float) -> None:
        """Until the probe sees Redis answer, the app stops, or ``timeout_s`` passed."""
        waits = [
            asyncio.ensure_future(self._answered.wait()),
            asyncio.ensure_future(self.stop_event.wait()),
        ]
        try:
            await asyncio.wait(waits, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()

    # ------------------------------------------------------------------ probe

    async def probe(self) -> bool:
        """One probe: ``INFO server`` (its run id), or PING where INFO is not allowed."""
        try:
            try:
                info = await self.client.info("server")
                run_id = info.get("run_id")
                self.run_id = str(run_id) if run_id else None
            except redis.ResponseError:  # INFO renamed or denied: availability only
                await self.client.ping()
                self.run_id = None
        except (redis.RedisError, OSError) as exc:
            self.mark_down("probe", exc)
            return False
        self.mark_up()
        self.probed.set()
        return True

    async def run(self) -> None:
        """Probe until the app stops (a task on the app's loop)."""
        while not self.stop_event.is_set():
            up = await self.probe()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop_event.wait(), self._probe_delay(up))

    def _probe_delay(self, up: bool) -> float:
        return self.probe_interval_s if up else min(self.probe_interval_s, DOWN_PROBE_INTERVAL_S)
