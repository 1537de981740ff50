"""Keep the libraries' chatter out of a user's terminal unless ``--log-level debug``.

Two kinds of lines reach a terminal from the offline commands (``prodcat train`` and the
demo's training run) without being prodcat's:

* Python loggers of TensorFlow, absl and tf2onnx at INFO ("Using tensorflow=...",
  "Optimizing ONNX model", ...): :func:`quiet_libraries` sets them to WARNING and sets
  ``TF_CPP_MIN_LOG_LEVEL`` before anything imports TensorFlow;
* native lines written straight to file descriptor 2 while TensorFlow loads its
  libraries: absl's "WARNING: All log messages before absl::InitializeLog() is called
  are written to STDERR" banner, then ``I0000 ...] oneDNN custom operations are on``
  and the CPU-feature notice. They bypass Python and ignore ``TF_CPP_MIN_LOG_LEVEL`` in
  TensorFlow 2.21, so :class:`NativeNoiseFilter` puts a pipe in front of descriptor 2 and
  drops exactly those lines; everything else (warnings, errors, tracebacks, progress bars)
  passes through unchanged.

Nothing here imports TensorFlow; it only decides what reaches stderr.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import threading
from types import TracebackType
from typing import Final

__all__ = ["LIBRARY_LOGGERS", "NativeNoiseFilter", "is_native_noise", "quiet_libraries"]

LIBRARY_LOGGERS: Final = ("tensorflow", "absl", "tf2onnx", "keras", "h5py")
"""Python loggers of the training libraries: WARNING unless the log level is DEBUG."""

_ABSL_BANNER: Final = b"WARNING: All log messages before absl::InitializeLog() is called"
# absl/glog's prefix of an INFO line: I<MMDD> <hh:mm:ss.micros> <thread> <file>:<line>]
_NATIVE_INFO: Final = re.compile(rb"I\d{4} [\d:.]+ +\d+ [\w./-]+:\d+\] ")
_CONTINUATION: Final = b"To enable the following instructions:"  # 2nd line of an INFO notice
_HOLD: Final = (_ABSL_BANNER, b"I0000 00:00:", _CONTINUATION)


def is_debug(level: str) -> bool:
    return level.strip().upper() == "DEBUG"


def quiet_libraries(level: str) -> None:
    """Library loggers to WARNING and TensorFlow's native level to errors-and-warnings
    only, unless ``level`` is DEBUG (then everything shows). Call before TensorFlow is
    imported; a ``TF_CPP_MIN_LOG_LEVEL`` the user set is kept."""
    debug = is_debug(level)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if debug else "2")
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if debug else logging.WARNING)


def is_native_noise(line: bytes, previous_dropped: bool = False) -> bool:
    """True for a native start-up line of TensorFlow that :class:`NativeNoiseFilter`
    drops: absl's pre-init banner, an absl/glog INFO line, or the continuation of a
    dropped INFO notice."""
    if line.startswith(_ABSL_BANNER) or _NATIVE_INFO.match(line):
        return True
    return previous_dropped and line.startswith(_CONTINUATION)


def _may_become_noise(partial: bytes) -> bool:
    """Whether an unfinished line could still turn out to be noise (so it waits for its
    end); any other partial line (a progress bar's ``\\r`` update) passes at once."""
    if any(p.startswith(partial) or partial.startswith(p) for p in _HOLD):
        return True
    return bool(re.fullmatch(rb"I\d{0,4}( [\d:. ]*)?", partial[:40]))


class NativeNoiseFilter:
    """A pipe in front of file descriptor 2 that drops TensorFlow's native start-up lines
    (:func:`is_native_noise`) and forwards everything else as it arrives.

    Use as a context manager around a command; leaving it restores descriptor 2 and
    forwards what is still in the pipe. Child processes started meanwhile inherit the
    pipe, so their TensorFlow lines are dropped too.
    """

    def __init__(self, fd: int = 2) -> None:
        self.fd = fd
        self.dropped = 0
        self._saved: int | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> NativeNoiseFilter:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        sys.stderr.flush()
        self._saved = os.dup(self.fd)
        read_end, write_end = os.pipe()
        os.dup2(write_end, self.fd)
        os.close(write_end)
        out = os.dup(self._saved)
        self._thread = threading.Thread(
            target=self._pump, args=(read_end, out), name="stderr-filter", daemon=True
        )
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        if self._saved is None:
            return
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.flush()
        os.dup2(self._saved, self.fd)  # closes our write end: the pump reads to the end
        os.close(self._saved)
        self._saved = None
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def _pump(self, read_end: int, out: int) -> None:
        pending = b""
        dropped_last = False
        try:
            while chunk := os.read(read_end, 65536):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                keep = []
                for line in lines:
                    dropped_last = is_native_noise(line, dropped_last)
                    if dropped_last:
                        self.dropped += 1
                    else:
                        keep.append(line + b"\n")
                if pending and not _may_become_noise(pending):
                    keep.append(pending)
                    pending = b""
                if keep:
                    _write_all(out, b"".join(keep))
            if pending and not is_native_noise(pending, dropped_last):
                _write_all(out, pending)
        finally:
            os.close(read_end)
            os.close(out)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
