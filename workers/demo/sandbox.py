"""Everything one ``prodcat demo`` run owns on shared services, and its removal.

Each run gets its own topics (``demo-{run_id}.*``), consumer groups and Redis key prefix,
so demos never touch production topics, never see each other's data, and can be cleaned up
exactly. :meth:`Sandbox.env` is the environment of the processes the demo starts.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import redis

from workers.core.errors import ProdcatError
from workers.core.settings import Settings, TopicSettings
from workers.kafka.sandbox import TopicSandbox
from workers.kafka.topics import topic_specs

__all__ = ["Sandbox", "free_port", "run_topics", "wait_ready"]

_TOPIC_VARS = "PRODCAT_TOPICS_"


def run_topics(prefix: str) -> dict[str, str]:
    """``PRODCAT_TOPICS_*`` of every topic setting, named ``{prefix}.{default name}``
    (without a leading ``prodcat.``): e.g. ``demo-1a2b.product.created``,
    ``demo-1a2b.models``. Every topic, so none a run creates or deletes is a shared one."""
    return {
        f"{_TOPIC_VARS}{name.upper()}": f"{prefix}.{str(info.default).removeprefix('prodcat.')}"
        for name, info in TopicSettings.model_fields.items()
    }


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Sandbox:
    """The run's topics, groups and keys (see the module docstring)."""

    def __init__(self, settings: Settings, run_id: str, bundle: Path) -> None:
        self.settings = settings
        t = f"demo-{run_id}"
        self.env = {
            **os.environ,
            "PRODCAT_KAFKA_BOOTSTRAP": settings.kafka.bootstrap,
            "PRODCAT_REDIS_URL": settings.redis.url,
            "PRODCAT_REDIS_KEY_PREFIX": f"prodcat-{t}",
            **run_topics(t),
            "PRODCAT_CLASSIFY_GROUP_ID": f"{t}-classify",
            "PRODCAT_FEEDBACK_APP_ID": f"{t}-feedback",
            "PRODCAT_FEEDBACK_STATE_DIR": f"var/demo/{t}-feedback",
            "PRODCAT_MODEL_BUNDLE": str(bundle),
            "PRODCAT_METRICS_PORT": str(free_port()),
            "PRODCAT_LOG_LEVEL": "WARNING",
        }
        self.prefix = f"prodcat-{t}"
        self.topics = TopicSandbox(settings.kafka, t, timeout_s=30.0)
        self.log_dir = Path("var/demo/logs")
        self._logs: dict[str, Path] = {}

    def spawn(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        """Start a child process whose output goes to ``var/demo/logs/{run}-{name}.log``
        (not the terminal, where it would tear the live view)."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        path = self._logs[name] = self.log_dir / f"{self.prefix}-{name}.log"
        with path.open("wb") as log:
            return subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)

    def log_tail(self, name: str, lines: int = 12) -> str:
        """The last lines a spawned process wrote, and where the whole log is."""
        path = self._logs.get(name)
        if path is None or not path.is_file():
            return ""
        tail = path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
        return f"\n--- last lines of {path} ---\n" + "\n".join(tail)

    def remove_logs(self) -> None:
        for path in self._logs.values():
            path.unlink(missing_ok=True)

    @property
    def metrics_port(self) -> int:
        return int(self.env["PRODCAT_METRICS_PORT"])

    def create(self) -> None:
        """Create the run's topics, ready for the processes started next."""
        names = {
            k[len(_TOPIC_VARS) :].lower(): v
            for k, v in self.env.items()
            if k.startswith(_TOPIC_VARS)
        }
        self.topics.create(topic_specs(self.settings.with_overrides(topics=names)))

    def destroy(self) -> None:
        """Delete the run's topics (and the feedback app's changelogs, named after its app
        id) and Redis keys; best effort for Kafka: a failure is logged, never raised."""
        self.topics.delete_all(also_prefixed=[self.env["PRODCAT_FEEDBACK_APP_ID"] + "-"])
        client = redis.Redis.from_url(self.settings.redis.url)
        try:
            keys = list(client.scan_iter(match=f"{self.prefix}:*", count=1000))
            if keys:
                client.delete(*keys)
        finally:
            client.close()


def wait_ready(
    port: int, worker: subprocess.Popen[bytes], timeout_s: float = 60, log: str = ""
) -> None:
    """Block until the worker's /readyz answers 200 (partitions assigned, model loaded)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise ProdcatError(
                f"the classify worker exited with {worker.returncode} at start-up{log}"
            )
        url = f"http://127.0.0.1:{port}/readyz"
        with (
            contextlib.suppress(urllib.error.URLError, OSError),
            urllib.request.urlopen(url, timeout=1) as resp,
        ):
            if resp.status == 200:
                return
        time.sleep(0.3)
    raise ProdcatError(f"the classify worker was not ready after {timeout_s:.0f} s")
