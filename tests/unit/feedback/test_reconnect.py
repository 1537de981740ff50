"""workers.feedback.reconnect: aiokafka's metadata refresh waits after failures."""

from __future__ import annotations

import asyncio

from aiokafka.client import AIOKafkaClient

from workers.feedback.reconnect import (
    INITIAL_BACKOFF_S,
    MAX_BACKOFF_S,
    install_metadata_backoff,
    with_backoff,
)


class _Client:
    """Stands in for an AIOKafkaClient: the wrapper keeps its wait on the instance."""


def test_failed_refreshes_wait_longer_each_time_and_a_success_resets() -> None:
    outcomes = iter([False] * 7 + [True, False])
    waits: list[float] = []

    async def update(client: object, cluster: object, topics: object) -> bool:
        return next(outcomes)

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    refresh = with_backoff(update, sleep=sleep)
    client, other = _Client(), _Client()

    async def run() -> list[bool]:
        results = [await refresh(client, None, None) for _ in range(7)]
        results.append(await refresh(client, None, None))  # True: no wait, reset
        results.append(await refresh(other, None, None))  # another client: its own wait
        return results

    results = asyncio.run(run())
    assert results == [False] * 7 + [True, False]
    assert waits == [0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0, 0.1]
    assert (waits[0], max(waits)) == (INITIAL_BACKOFF_S, MAX_BACKOFF_S)


def test_installed_on_the_aiokafka_in_use_once() -> None:
    assert install_metadata_backoff()
    wrapped = AIOKafkaClient._metadata_update
    assert install_metadata_backoff()  # a second app in the process does not wrap again
    assert AIOKafkaClient._metadata_update is wrapped
    assert getattr(wrapped, "_prodcat_backoff", False)
