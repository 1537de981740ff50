"""Signals for long-running workers: the first SIGTERM/SIGINT drains, the second exits now.

The worker classes install nothing themselves (they may run inside tests or other
programs); the CLI runs them with :func:`serve`, which installs the handlers around
``start()``, ``run()`` and ``stop()`` and restores the previous ones afterwards.

The worker loop only makes short blocking calls, so the handler (which Python runs
on the main thread between bytecodes) gets its turn within tens of milliseconds.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable
from types import FrameType
from typing import Protocol

from workers.core.logs import flush_repeats

__all__ = ["Service", "install_stop_signals", "serve"]

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


class Service(Protocol):
    """A long-running process object: the classify worker or the feedback app."""

    def start(self) -> None: ...
    def run(self) -> None: ...
    def request_stop(self) -> None: ...
    def stop(self) -> None: ...


def serve(service: Service) -> None:
    """Start ``service`` and run it until it returns, the first SIGTERM/SIGINT draining it
    and a second exiting at once; then stop it (also when start or run raised)."""
    restore = install_stop_signals(service.request_stop)
    try:
        try:
            service.start()
            service.run()
        finally:
            service.stop()
    finally:
        restore()
        flush_repeats()  # lines the log's repeat filter still holds back
