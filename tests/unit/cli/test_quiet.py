"""The stderr filter of the offline commands: TensorFlow's native start-up lines go, the
rest stays, in order, progress-bar updates included.

The lines below are TensorFlow 2.21's, as ``import tensorflow`` writes them to file
descriptor 2; tests/integration/test_cli.py checks the real import and ``prodcat train``.
"""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

from workers.cli.quiet import LIBRARY_LOGGERS, is_native_noise, quiet_libraries

BANNER = b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
ONEDNN = (
    b"I0000 00:00:1796406629.465653   27852 port.cc:153] oneDNN custom operations are on. "
    b"You may see slightly different numerical results due to floating-point round-off errors "
    b"from different computation orders. To turn them off, set the environment variable "
    b"`TF_ENABLE_ONEDNN_OPTS=0`."
)
CPU = (
    b"I0000 00:00:1796406629.576931   27852 cpu_feature_guard.cc:227] This TensorFlow binary "
    b"is optimized to use available CPU instructions in performance-critical operations."
)
CPU_2 = (
    b"To enable the following instructions: AVX2 AVX512F FMA, in other operations, rebuild "
    b"TensorFlow with the appropriate compiler flags."
)
ERROR = b"E0000 00:00:1796406629.6   27852 cuda_executor.cc:1] failed call to cuInit"


def test_noise_lines() -> None:
    assert is_native_noise(BANNER) and is_native_noise(ONEDNN) and is_native_noise(CPU)
    assert is_native_noise(CPU_2, previous_dropped=True)
    assert not is_native_noise(CPU_2)  # only as the second line of a dropped notice
    assert not is_native_noise(ERROR)  # errors stay
    assert not is_native_noise(b"12:00:01 INFO prodcat.train: split: train=1361")
    assert not is_native_noise(b"Traceback (most recent call last):")


SCRIPT = r"""
import os, sys, time
from workers.cli.quiet import NativeNoiseFilter
lines = [eval(x) for x in sys.argv[1:]]
with NativeNoiseFilter() as f:
    for line in lines:
        os.write(2, line)
        time.sleep(0.01)
    print("from python", file=sys.stderr)
print(f"dropped {f.dropped}")
"""


def _run(*chunks: bytes) -> tuple[bytes, str]:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, *map(repr, chunks)], capture_output=True, check=True
    )
    return done.stderr, done.stdout.decode()


def test_filter_drops_the_start_up_lines_and_keeps_the_rest() -> None:
    err, out = _run(
        b"kept before\n",
        BANNER + b"\n",
        ONEDNN + b"\n" + CPU + b"\n" + CPU_2 + b"\n",
        b"epoch 1/2 ",
        b"\rtraining  50%",  # a progress bar: no newline, shown as it comes
        b"\rtraining 100%\n",
        ERROR + b"\n",
        b"I0000 00:00:1.0   1 port.cc:1] split ",  # an INFO line written in two parts
        b"over two writes\n",
    )
    assert err == (
        b"kept before\nepoch 1/2 \rtraining  50%\rtraining 100%\n" + ERROR + b"\nfrom python\n"
    )
    assert out.strip() == "dropped 5"


def test_a_line_without_newline_at_the_end_is_kept() -> None:
    err, _ = _run(BANNER + b"\n", b"last words")
    assert err == b"last words" + b"from python\n"


@pytest.mark.parametrize(("level", "shown"), [("INFO", False), ("DEBUG", True)])
def test_library_loggers_are_quiet_unless_debug(
    level: str, shown: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    try:
        quiet_libraries(level)
        assert logging.getLogger("tf2onnx.tfonnx").isEnabledFor(logging.INFO) is shown
        assert logging.getLogger("tensorflow").isEnabledFor(logging.INFO) is shown
        import os

        assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == ("0" if shown else "2")
    finally:
        for name in LIBRARY_LOGGERS:
            logging.getLogger(name).setLevel(logging.NOTSET)
