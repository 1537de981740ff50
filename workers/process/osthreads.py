"""Names for the worker's threads as the operating system sees them.

Python's thread names live in the interpreter only; ``top -H``, ``py-spy``, ``/proc`` and
the benchmarks' per-thread CPU split see every Python thread as ``python``. On Linux,
:func:`name_os_thread` sets the calling thread's kernel name (``prctl(PR_SET_NAME)``,
at most 15 bytes), so the model thread's and the model follower's CPU can be told
apart from the loop's. Elsewhere it does nothing.
"""

from __future__ import annotations

import ctypes
import sys

__all__ = ["name_os_thread"]

_PR_SET_NAME = 15
_NAME_MAX = 15


def name_os_thread(name: str) -> None:
    """Give the calling thread the kernel name ``name`` (cut to 15 bytes); Linux only."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_NAME, name.encode()[:_NAME_MAX], 0, 0, 0)
    except (OSError, AttributeError):  # no libc symbol: names are cosmetic, carry on
        return
