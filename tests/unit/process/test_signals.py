"""workers.process.signals: the first stop signal drains, the second exits at once."""

from __future__ import annotations

import os
import signal

from workers.process.signals import install_stop_signals


def test_signals_first_drains_second_exits() -> None:
    stops: list[int] = []
    exits: list[int] = []
    restore = install_stop_signals(lambda: stops.append(1), hard_exit=exits.append)
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        assert stops == [1] and exits == []
        os.kill(os.getpid(), signal.SIGINT)
        assert exits == [128 + signal.SIGINT]
    finally:
        restore()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL or callable(
        signal.getsignal(signal.SIGTERM)
    )
