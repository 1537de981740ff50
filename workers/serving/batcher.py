"""Concurrent requests' items gathered into one model run.

A :class:`Batcher` owns one model thread. Requests hand their items to :meth:`submit` and
await the answers. Its loop task (on the server's event loop) waits for a first request,
then at most ``wait_s`` for more, takes whole requests up to ``max_items`` (a request is
never split; one larger than the cap runs alone) and runs them as one batch on the model
thread, while the next batch gathers. So under load a batch is what arrived during the
previous one, and an idle server answers a lone request after at most ``wait_s``.

With batching off, every request is its own model run (queued on the same thread): the
baseline the benchmark compares with.

Before each batch the loop calls ``before_batch`` (the hot swap: take a newly loaded model
set), so a swap happens between batches and never inside one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from workers.process.osthreads import name_os_thread
from workers.serving.metrics import ServeMetrics

__all__ = ["Batcher"]

log = logging.getLogger(__name__)

I = TypeVar("I")  # noqa: E741 - an item
R = TypeVar("R")


@dataclass(slots=True)
class _Request(Generic[I, R]):
    items: Sequence[I]
    future: asyncio.Future[list[R]]
    queued_at: float = field(default_factory=time.perf_counter)


class Batcher(Generic[I, R]):
    """Run ``run(items)`` on one model thread for batches of concurrent requests' items."""

    def __init__(
        self,
        kind: str,
        run: Callable[[Sequence[I]], list[R]],
        metrics: ServeMetrics,
        *,
        enabled: bool = True,
        wait_s: float = 0.001,
        max_items: int = 512,
        before_batch: Callable[[], None] = lambda: None,
    ) -> None:
        self.kind = kind
        self._run = run
        self.enabled = enabled
        self.wait_s = wait_s
        self.max_items = max_items
        self._before = before_batch
        self._queue: deque[_Request[I, R]] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(
            max_workers=1,
            thread_name_prefix=f"prodcat-{kind}",
            initializer=name_os_thread,
            initargs=(f"prodcat-{kind}"[:15],),
        )
        self._size = metrics.batch_size.labels(kind)
        self._requests = metrics.batch_requests.labels(kind)
        self._seconds = metrics.batch_seconds.labels(kind)

    def start(self) -> None:
        """Start the loop task (call on the server's event loop)."""
        if self.enabled and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop(), name=self.kind)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for request in self._queue:
            if not request.future.done():
                request.future.set_exception(RuntimeError("the server is stopping"))
        self._queue.clear()
        self._executor.shutdown(wait=True)

    async def submit(self, items: Sequence[I]) -> list[R]:
        """The answers for ``items``, in order (raises what the model run raised)."""
        loop = asyncio.get_running_loop()
        if not self.enabled:
            self._before()
            return await loop.run_in_executor(self._executor, self._timed, items, 1)
        request: _Request[I, R] = _Request(items, loop.create_future())
        self._queue.append(request)
        self._wake.set()
        return await request.future

    def _timed(self, items: Sequence[I], requests: int) -> list[R]:
        t0 = time.perf_counter()
        try:
            return self._run(items)
        finally:
            self._seconds.observe(time.perf_counter() - t0)
            self._size.observe(len(items))
            self._requests.observe(requests)

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        queue = self._queue
        while True:
            if not queue:
                self._wake.clear()
                await self._wake.wait()
            if self.wait_s > 0 and sum(len(r.items) for r in queue) < self.max_items:
                await asyncio.sleep(self.wait_s)
            taken: list[_Request[I, R]] = []
            items: list[I] = []
            while queue and (not taken or len(items) + len(queue[0].items) <= self.max_items):
                request = queue.popleft()
                if request.future.done():  # timed out or cancelled while queued
                    continue
                taken.append(request)
                items.extend(request.items)
            if not taken:
                continue
            try:
                self._before()
                answers = await loop.run_in_executor(self._executor, self._timed, items, len(taken))
            except Exception as exc:
                log.exception("%s batch of %d items failed", self.kind, len(items))
                for request in taken:
                    if not request.future.done():
                        request.future.set_exception(exc)
                continue
            start = 0
            for request in taken:
                end = start + len(request.items)
                if not request.future.done():
                    request.future.set_result(answers[start:end])
                start = end
