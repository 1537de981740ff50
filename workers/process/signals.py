"""Signals for long-running workers: the first SIGTERM/SIGINT drains, the second exits now.

The worker classes install nothing themselves (they may run inside tests or other
programs); the CLI calls :func:`install_stop_signals` around ``run()``::

    restore = install_stop_signals(worker.request_stop)
    try:
        worker.run()
    finally:
        restore()

The worker loop only makes short blocking calls, so the handler (which Python runs
on the main thread between bytecodes) gets its turn within tens of milliseconds.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable
from types import FrameType

__all__ = ["install_stop_signals"]

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def install_stop_signals(
    request_stop: Callable[[], None], *, hard_exit: Callable[[int], None] = os._exit
) -> Callable[[], None]:
    """Handle SIGTERM/SIGINT: first call ``request_stop``, on a second signal exit at once
    with status 128 + signal number. Returns a function that restores the old handlers."""
    received: list[int] = []

    def handler(signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if received:
            log.warning("second %s: exiting now without draining", name)
            hard_exit(128 + signum)
            return
        received.append(signum)
        log.info("%s: draining (send it again to exit at once)", name)
        request_stop()

    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore
