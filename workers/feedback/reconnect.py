"""Back-off for aiokafka's metadata refresh while no broker answers (the feedback app).

aiokafka, under faust, refreshes the cluster metadata in one background task. Every
connection that fails asks for another refresh, and its producer asks again at once
whenever a partition it has messages for has no known leader. When a broker shuts down,
leaders first become unknown and then the connection is refused: the producer and the
refresh task chase each other with no pause, two ERROR lines a turn (``Unable connect to
node with id 1``, ``Unable to update metadata``), 138,822 lines in 11 s in a fault harness.
aiokafka has no setting for that loop (its ``retry_backoff_ms`` is not used there, and
faust passes none), so :func:`install_metadata_backoff` wraps
``AIOKafkaClient._metadata_update``: after a failed refresh it waits (0.1 s, doubling up to
:data:`MAX_BACKOFF_S`) before it reports the failure, and a refresh that succeeds resets
the wait. Every caller waiting for metadata waits with it; once a broker answers again,
the next refresh comes within the current wait. The log lines that remain are held back
by :class:`workers.core.logs.RepeatFilter`.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final

__all__ = ["INITIAL_BACKOFF_S", "MAX_BACKOFF_S", "install_metadata_backoff", "with_backoff"]

log = logging.getLogger(__name__)

INITIAL_BACKOFF_S: Final = 0.1
MAX_BACKOFF_S: Final = 2.0
_MARK: Final = "_prodcat_backoff"
_STATE: Final = "_prodcat_metadata_backoff_s"

MetadataUpdate = Callable[[Any, Any, Any], Awaitable[bool]]


def with_backoff(
    update: MetadataUpdate,
    *,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    initial_s: float = INITIAL_BACKOFF_S,
    max_s: float = MAX_BACKOFF_S,
) -> MetadataUpdate:
    """``update`` (an ``AIOKafkaClient._metadata_update``) that, when it fails, waits
    before returning: ``initial_s`` after the first failure in a row, doubling up to
    ``max_s``. The wait is kept per client, on the client."""

    async def _metadata_update(client: Any, cluster_metadata: Any, topics: Any) -> bool:
        ok = await update(client, cluster_metadata, topics)
        state = vars(client)
        if ok:
            state.pop(_STATE, None)
            return ok
        wait = state.get(_STATE, 0.0)
        wait = min(max_s, wait * 2.0) if wait else initial_s
        state[_STATE] = wait
        await sleep(wait)
        return ok

    setattr(_metadata_update, _MARK, True)
    return _metadata_update


def install_metadata_backoff() -> bool:
    """Wrap ``aiokafka.client.AIOKafkaClient._metadata_update`` with :func:`with_backoff`
    (once per process). False, with a warning, if this aiokafka has no such method."""
    from aiokafka.client import AIOKafkaClient

    current = getattr(AIOKafkaClient, "_metadata_update", None)
    if current is None or not inspect.iscoroutinefunction(current):
        log.warning(
            "aiokafka %s has no coroutine AIOKafkaClient._metadata_update: metadata refreshes "
            "are not backed off while no broker answers",
            _aiokafka_version(),
        )
        return False
    if not getattr(current, _MARK, False):
        AIOKafkaClient._metadata_update = with_backoff(current)
    return True


def _aiokafka_version() -> str:
    import aiokafka

    return str(getattr(aiokafka, "__version__", "?"))
