"""workers/serving/batcher.py: concurrent requests gathered into model runs, in order."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import pytest

from workers.serving.batcher import Batcher
from workers.serving.metrics import ServeMetrics


class Model:
    """Records each run's items; answers each item with its double."""

    def __init__(self, fail_on: int | None = None) -> None:
        self.runs: list[list[int]] = []
        self.threads: set[str] = set()
        self.fail_on = fail_on
        self.release = threading.Event()
        self.release.set()

    def run(self, items: Sequence[int]) -> list[int]:
        self.release.wait(5)
        self.threads.add(threading.current_thread().name)
        self.runs.append(list(items))
        if self.fail_on is not None and self.fail_on in items:
            raise ValueError(f"bad item {self.fail_on}")
        return [2 * i for i in items]


def _run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_concurrent_requests_share_a_model_run_and_get_their_own_answers() -> None:
    model = Model()
    model.release.clear()  # the first run waits: the others queue up behind it
    swaps: list[int] = []

    async def main() -> list[list[int]]:
        batcher = Batcher("t", model.run, ServeMetrics(), wait_s=0.001, max_items=100,
                          before_batch=lambda: swaps.append(1))  # fmt: skip
        batcher.start()
        first = asyncio.ensure_future(batcher.submit([0]))
        await asyncio.sleep(0.05)
        rest = [asyncio.ensure_future(batcher.submit([i, i + 100])) for i in range(1, 11)]
        await asyncio.sleep(0.05)
        model.release.set()
        answers = await asyncio.gather(first, *rest)
        await batcher.close()
        return answers

    answers = _run(main())
    assert answers[0] == [0]
    assert answers[1:] == [[2 * i, 2 * (i + 100)] for i in range(1, 11)]
    assert model.runs[0] == [0]
    assert len(model.runs) == 2 and len(model.runs[1]) == 20  # ten requests, one run
    assert len(swaps) == len(model.runs)  # the swap hook runs before every batch
    assert all(name.startswith("prodcat-t") for name in model.threads)


def test_the_cap_is_never_exceeded_and_a_request_is_never_split() -> None:
    model = Model()
    model.release.clear()

    async def main() -> list[list[int]]:
        batcher = Batcher("t", model.run, ServeMetrics(), wait_s=0.0, max_items=5)
        batcher.start()
        first = asyncio.ensure_future(batcher.submit([0]))
        await asyncio.sleep(0.05)
        sizes = [3, 3, 2, 7, 1]
        rest = [asyncio.ensure_future(batcher.submit(list(range(n)))) for n in sizes]
        await asyncio.sleep(0.05)
        model.release.set()
        answers = await asyncio.gather(first, *rest)
        await batcher.close()
        return answers

    answers = _run(main())
    assert [len(a) for a in answers] == [1, 3, 3, 2, 7, 1]
    assert [len(r) for r in model.runs] == [1, 3, 5, 7, 1]  # 3 | 3+2 | 7 alone | 1


def test_a_failed_run_fails_its_requests_only() -> None:
    model = Model(fail_on=13)

    async def main() -> tuple[object, list[int]]:
        batcher = Batcher("t", model.run, ServeMetrics(), wait_s=0.0)
        batcher.start()
        bad = await asyncio.gather(batcher.submit([13]), return_exceptions=True)
        good = await batcher.submit([4])
        await batcher.close()
        return bad[0], good

    bad, good = _run(main())
    assert isinstance(bad, ValueError)
    assert good == [8]


def test_without_batching_each_request_is_its_own_run() -> None:
    model = Model()
    swaps: list[int] = []

    async def main() -> list[list[int]]:
        batcher = Batcher("t", model.run, ServeMetrics(), enabled=False,
                          before_batch=lambda: swaps.append(1))  # fmt: skip
        batcher.start()
        answers = await asyncio.gather(*(batcher.submit([i]) for i in range(6)))
        await batcher.close()
        return answers

    assert _run(main()) == [[2 * i] for i in range(6)]
    assert sorted(map(tuple, model.runs)) == [(i,) for i in range(6)]
    assert len(swaps) == 6


@pytest.mark.parametrize("wait_s", [0.0, 0.002])
def test_a_request_that_gave_up_is_skipped(wait_s: float) -> None:
    model = Model()
    model.release.clear()

    async def main() -> list[int]:
        batcher = Batcher("t", model.run, ServeMetrics(), wait_s=wait_s)
        batcher.start()
        first = asyncio.ensure_future(batcher.submit([1]))
        await asyncio.sleep(0.02)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(batcher.submit([2]), 0.01)
        later = asyncio.ensure_future(batcher.submit([3]))
        await asyncio.sleep(0.02)
        model.release.set()
        await first
        answer = await later
        await batcher.close()
        return answer

    assert _run(main()) == [6]
    assert [2] not in model.runs
