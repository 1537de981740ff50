"""Redis rebuilt from the tables: every override the app holds is put back when Redis lost it.

The ``products`` table, changelogged in Kafka, is the record of every override; Redis only
serves them to the classify worker, and a Redis that restarts without persistence (or fails
over to a replica that missed writes, or is flushed) loses them. :class:`Restorer` runs on
the app's loop beside the agent and makes Redis hold, for each product of the partitions this
instance owns, the override its table entry holds. A *pass* reads the overrides of some
partitions from the table, compares them with Redis (``MGET``) in chunks, and writes the
missing or different ones (one pipeline per chunk), at most ``PRODCAT_FEEDBACK_RESTORE_RATE``
overrides a second so a big table does not stall corrections. A pass runs:

* ``start``: when partitions are assigned (at start and after a rebalance) and the tables
  are recovered;
* ``redis_restarted``: when the probe (:class:`~workers.feedback.redislink.RedisLink`) sees a
  new Redis run id;
* ``redis_emptied``: when the marker hash ``{prefix}:feedback-restored:{app_id}`` lacks the
  field of a partition this instance restored (Redis lost keys without restarting, e.g. a
  flush or a failover to an empty replica);
* ``periodic``: every ``PRODCAT_FEEDBACK_RECONCILE_INTERVAL_S``, to repair whatever else
  drifted (a stale value, a key deleted by hand).

Each chunk is compared and written under the link's lock, skipping products whose override
is being replaced (:meth:`RedisLink.writing`), so a pass never puts back an older value. After
a pass the marker fields of its partitions are set. Each check first indexes the parked
feedback of newly assigned partitions, so ``prodcat_feedback_parked`` reflects the recovered
table at once, not after the partition's next event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Collection, Sequence
from typing import Final

import redis

from workers.core.overrides import decode_override, override_key, restore_marker_key
from workers.feedback.metrics import FeedbackMetrics
from workers.feedback.outputs import override_value
from workers.feedback.parking import ParkedIndex
from workers.feedback.redislink import RedisLink
from workers.feedback.state import OverrideState
from workers.feedback.tables import FeedbackTables

__all__ = ["CHUNK", "Restorer"]

log = logging.getLogger(__name__)

CHUNK: Final = 200
"""Overrides compared (one MGET) and written (one pipeline) at a time."""
SCAN_SLICE: Final = 2000
"""Table keys looked at between two yields to the agent."""


class Restorer:
    """See the module docstring. ``assigned`` gives this instance's input partitions and
    ``ready`` whether the tables are recovered and no rebalance is under way."""

    def __init__(
        self,
        *,
        link: RedisLink,
        tables: FeedbackTables,
        parked: ParkedIndex,
        metrics: FeedbackMetrics,
        app_id: str,
        rate: int,
        reconcile_interval_s: float,
        assigned: Callable[[], Collection[int]],
        ready: Callable[[], bool],
        stop_event: asyncio.Event,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.link = link
        self.tables = tables
        self.parked = parked
        self.metrics = metrics
        self.marker = restore_marker_key(link.prefix, app_id)
        self.rate = rate
        self.reconcile_interval_s = reconcile_interval_s
        self.assigned = assigned
        self.ready = ready
        self.stop_event = stop_event
        self.clock = clock
        self.restored: set[int] = set()
        """Partitions whose overrides Redis is known to hold (in its current run)."""
        self._run_id: str | None = None
        self._last_full = clock()

    async def run(self) -> None:
        """Check after each probe that found Redis answering, until the app stops."""
        link = self.link
        while not self.stop_event.is_set():
            waits = [
                asyncio.ensure_future(link.probed.wait()),
                asyncio.ensure_future(self.stop_event.wait()),
            ]
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waits:
                    w.cancel()
            link.probed.clear()
            if self.stop_event.is_set():
                return
            try:
                await self.check()
            except (redis.RedisError, OSError) as exc:
                link.mark_down("restoring overrides", exc)  # the next probe tells when back
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug: log it, never stop the app's loop
                log.exception("restoring overrides into Redis failed")

    async def check(self) -> None:
        """Run the passes due now (see the module docstring)."""
        if not self.ready():
            return
        assigned = set(self.assigned())
        self.restored &= assigned  # revoked partitions are another instance's now
        self._index_parked(assigned)
        run_id, self._run_id = self._run_id, self.link.run_id
        if run_id is not None and self.link.run_id is not None and run_id != self.link.run_id:
            log.warning(
                "Redis at %s restarted (run id %s -> %s): checking every override",
                self.link.shown,
                run_id[:8],
                self.link.run_id[:8],
            )
            self.restored.clear()
            await self.restore(assigned, "redis_restarted")
            return
        if self.restored:
            parts = sorted(self.restored)
            fields = await self.link.client.hmget(self.marker, [str(p) for p in parts])
            gone = {p for p, v in zip(parts, fields, strict=True) if v is None}
            if gone:
                log.warning(
                    "Redis at %s lost keys (restore marker of partitions %s gone): "
                    "restoring their overrides",
                    self.link.shown,
                    ",".join(map(str, sorted(gone))),
                )
                self.restored -= gone
                await self.restore(gone, "redis_emptied")
        new = assigned - self.restored
        if new:
            await self.restore(new, "start")
        interval = self.reconcile_interval_s
        if interval and self.clock() - self._last_full >= interval:
            await self.restore(assigned, "periodic")

    def _index_parked(self, assigned: set[int]) -> None:
        """Index the parked feedback of assigned partitions not indexed yet (the gauge)."""
        self.parked.forget(p for p in list(self.parked.partitions()) if p not in assigned)
        todo = {p for p in assigned if not self.parked.indexed(p)}
        if todo:
            self.parked.rebuild(todo, self.tables.parked_states())

    # ------------------------------------------------------------------ one pass

    async def restore(self, partitions: Collection[int], trigger: str) -> int:
        """Make Redis hold every override of ``partitions``; returns how many were written."""
        wanted = set(partitions)
        if not wanted:
            return 0
        started = self.clock()
        self.metrics.restore_passes.labels(trigger).inc()
        product_ids = await self._override_keys(wanted)
        written = checked = 0
        for i in range(0, len(product_ids), CHUNK):
            if self.stop_event.is_set():
                return written
            chunk = product_ids[i : i + CHUNK]
            written += await self._repair(chunk, wanted)
            checked += len(chunk)
            await self._pace(checked, started)
        await self.link.client.hset(
            self.marker, mapping={str(p): f"{time.time():.0f}" for p in sorted(wanted)}
        )
        self.restored |= wanted
        if wanted >= set(self.assigned()):
            self._last_full = self.clock()
        level = logging.INFO if written or trigger != "periodic" else logging.DEBUG
        log.log(
            level,
            "overrides of partitions %s compared with Redis (%s): %d compared, %d written back, "
            "%.1f s",
            ",".join(map(str, sorted(wanted))),
            trigger,
            checked,
            written,
            self.clock() - started,
        )
        return written

    async def _override_keys(self, partitions: set[int]) -> list[str]:
        """Product ids with an override in ``partitions``, scanning the table in slices."""
        keys = self.tables.product_keys()
        out: list[str] = []
        for i in range(0, len(keys), SCAN_SLICE):
            out += self.tables.with_override(keys[i : i + SCAN_SLICE], partitions)
            await asyncio.sleep(0)  # let the agent run
        return out

    async def _repair(self, product_ids: Sequence[str], partitions: set[int]) -> int:
        """Compare one chunk with Redis and write what is missing or different."""
        link = self.link
        async with link.lock:
            overrides: list[tuple[str, OverrideState]] = []
            for pid in product_ids:
                if link.busy(pid):
                    continue  # a newer override is being written right now
                state = self.tables.state(pid)
                if state is None or state.override is None:
                    continue
                if state.partition is not None and state.partition not in partitions:
                    continue
                overrides.append((pid, state.override))
            if not overrides:
                return 0
            keys = [override_key(link.prefix, pid) for pid, _ in overrides]
            held = await link.client.mget(keys)
            fixes: list[tuple[str, bytes]] = []
            for key, (_, override), raw in zip(keys, overrides, held, strict=True):
                if raw is None:
                    fixes.append((key, override_value(override)))
                    self.metrics.overrides_restored.labels("missing").inc()
                    continue
                found = decode_override(raw.encode() if isinstance(raw, str) else raw)
                if found is None or (found.path, found.source) != (
                    override.category_path,
                    override.source,
                ):
                    fixes.append((key, override_value(override)))
                    self.metrics.overrides_restored.labels("stale").inc()
            if fixes:
                pipe = link.client.pipeline(transaction=False)
                for key, value in fixes:
                    pipe.set(key, value)
                await pipe.execute()
        link.mark_up()
        return len(fixes)

    async def _pace(self, done: int, started: float) -> None:
        """Sleep so that at most ``rate`` overrides a second are handled (and always yield)."""
        ahead = done / self.rate - (self.clock() - started)
        if ahead <= 0:
            await asyncio.sleep(0)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop_event.wait(), ahead)
