"""A private redis-server on a free port, for tests that stop, restart or empty Redis (the
shared one on 6379 is never touched)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import redis

from tests.integration.classify_support import wait_for


class PrivateRedis:
    """``redis-server`` without persistence (as the issue's fault: a restart loses every
    key), started and stopped by the test; ``persistent``: with an append-only file (fsync
    on every write) in ``workdir``, so a stop and start keeps every key."""

    def __init__(self, port: int, workdir: Path, *, persistent: bool = False) -> None:
        self.port = port
        self.workdir = workdir
        self.persistent = persistent
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        server = shutil.which("redis-server")
        if server is None:
            pytest.fail("redis-server is not installed (needed for a private Redis)")
        self.proc = subprocess.Popen(
            [server, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--dir", str(self.workdir), *self._persistence()],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis(port=self.port, socket_timeout=1)

        def up() -> bool:
            try:
                return bool(client.ping())
            except redis.RedisError:
                return False

        wait_for(up, 10, f"private redis-server on port {self.port}", 0.05)
        client.close()

    def _persistence(self) -> list[str]:
        if not self.persistent:
            return ["--appendonly", "no"]
        return ["--appendonly", "yes", "--appendfsync", "always"]

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=2)
