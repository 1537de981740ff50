"""``prodcat serve`` as a real process on a real port, for the serving integration tests.

:class:`ServerProcess` starts ``python -m workers.cli serve`` with a test's own control
topics, model store, Redis key prefix and ports, waits until the API answers, and stops it
with SIGTERM (checking it exits 0).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.classify_support import REPO, delete_keys, free_port
from workers.core.settings import Settings
from workers.kafka.sandbox import TopicSandbox


@dataclass
class ServeSetup:
    """A private namespace for one server: control topics, store, Redis prefix, ports."""

    bootstrap: str
    redis_url: str
    store: Path
    topics: dict[str, str]
    prefix: str = field(default_factory=lambda: f"prodcat-test:{uuid.uuid4().hex[:10]}")
    extra: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def create(
        cls, sandbox: TopicSandbox, bootstrap: str, redis_url: str, store: Path
    ) -> ServeSetup:
        topics = {
            "models": sandbox.new(1, name=f"models-{uuid.uuid4().hex[:6]}"),
            "query_models": sandbox.new(1, name=f"qmodels-{uuid.uuid4().hex[:6]}"),
        }
        return cls(bootstrap, redis_url, store, topics)

    def sections(self) -> dict[str, dict[str, Any]]:
        base: dict[str, dict[str, Any]] = {
            "kafka": {"bootstrap": self.bootstrap},
            "topics": dict(self.topics),
            "redis": {"url": self.redis_url, "key_prefix": self.prefix},
            "model": {"store": str(self.store)},
            "metrics": {"port": 0},
            "serve": {"port": free_port(), "host": "127.0.0.1"},
        }
        for section, values in self.extra.items():
            base.setdefault(section, {}).update(values)
        return base

    def settings(self) -> Settings:
        return Settings().with_overrides(**self.sections())

    def env(self, sections: dict[str, dict[str, Any]]) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PRODCAT_")}
        for section, values in sections.items():
            for name, value in values.items():
                if value is None:
                    continue
                text = str(value).lower() if isinstance(value, bool) else str(value)
                env[f"PRODCAT_{section.upper()}_{name.upper()}"] = text
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def cleanup(self) -> None:
        delete_keys(self.redis_url, self.prefix)


class ServerProcess:
    """``prodcat serve`` in a subprocess; :attr:`url` is its API root."""

    def __init__(self, setup: ServeSetup, log_path: Path, *args: str) -> None:
        sections = setup.sections()
        self.port = int(sections["serve"]["port"])
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "workers.cli", "serve", *args],
            cwd=REPO,
            env=setup.env(sections),
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout_s: float = 90.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"prodcat serve exited {self.proc.returncode}:\n{self.logs()}")
            try:
                if httpx.get(self.url + "/v2/health/live", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        pytest.fail(f"prodcat serve did not answer within {timeout_s:.0f} s:\n{self.logs()}")

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]

    def stop(self) -> int:
        """SIGTERM, and the exit status (killed after 30 s)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()
        return self.proc.returncode
