"""A Kafka broker of the tests' own, for tests that stop it: never the shared one.

``deploy/local/stack up kafka`` starts it with its own state folder and ports, exactly as
a developer's stack (so the stack script is what these tests exercise too). Tests stop it
by signalling its pid (from the private pid file) and start it again with the same
command; :meth:`PrivateKafka.close` stops it for good at the end of the session.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.classify_support import REPO, free_port

STACK = REPO / "deploy" / "local" / "stack"
START_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 60.0


class PrivateKafka:
    """A single-node KRaft broker under ``root``, on free ports of 127.0.0.1."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.controller_port = free_port()
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("PRODCAT_")},
            "PRODCAT_STACK_DIR": str(root),
            "PRODCAT_STACK_KAFKA_PORT": str(self.port),
            "PRODCAT_STACK_KAFKA_CONTROLLER_PORT": str(self.controller_port),
            "PRODCAT_STACK_REDIS_PORT": str(free_port()),  # never started: `up kafka`
            "PRODCAT_STACK_START_TIMEOUT_S": str(int(START_TIMEOUT_S) - 30),
        }
        if "PRODCAT_CACHE_DIR" in os.environ:  # the broker jars, fetched once
            self.env["PRODCAT_CACHE_DIR"] = os.environ["PRODCAT_CACHE_DIR"]

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.root / "kafka" / "kafka.pid"

    def up(self) -> subprocess.CompletedProcess[str]:
        """``deploy/local/stack up kafka``; its result (the caller checks it)."""
        return subprocess.run(
            [str(STACK), "up", "kafka"],
            env=self.env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT_S,
            check=False,
        )

    def start(self) -> None:
        result = self.up()
        if result.returncode != 0:
            pytest.fail(
                f"private Kafka did not start ({result.returncode}):\n"
                f"{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
            )

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _alive(pid) else None

    def stop(self, sig: signal.Signals = signal.SIGKILL) -> None:
        """Signal the broker and wait until it is gone. Its pid file stays, as after a
        crash: only ``stack down`` removes it."""
        pid = self.pid()
        if pid is None:
            return
        os.kill(pid, sig)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while _alive(pid) or _listening(self.port) or _listening(self.controller_port):
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                deadline = time.monotonic() + STOP_TIMEOUT_S
            time.sleep(0.1)

    def close(self) -> None:
        self.stop(signal.SIGTERM)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie whose threads are all gone (its sockets closed) is dead for our purpose
        zombie = Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
        return not zombie or len(list(Path(f"/proc/{pid}/task").iterdir())) > 1
    except (OSError, IndexError):
        return True


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return True
    except OSError:
        return False
