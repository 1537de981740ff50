"""The local stack's Redis keeps what it holds across a restart (append-only file), as the
README says: a private redis-server run from ``deploy/local/redis/redis.conf.template``."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
import redis

from tests.integration.classify_support import REPO, free_port, wait_for

TEMPLATE = REPO / "deploy" / "local" / "redis" / "redis.conf.template"
KEY, VALUE = "prodcat:override:IN-GROC-000184223", b'{"category_path":["A","B"]}'


def start(conf: Path, port: int) -> redis.Redis:
    server = shutil.which("redis-server")
    if server is None:
        pytest.fail("redis-server is not installed (deploy/local/stack installs it)")
    subprocess.run([server, str(conf)], check=True, timeout=30)  # daemonizes
    client = redis.Redis(port=port, socket_timeout=2)

    def up() -> bool:
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False

    wait_for(up, 20, f"redis-server on port {port}", 0.05)
    return client


def shutdown(client: redis.Redis, *, save: bool) -> None:
    with contextlib.suppress(redis.ConnectionError):  # SHUTDOWN drops the connection
        client.shutdown(nosave=not save)


def test_the_local_redis_keeps_overrides_across_a_restart(tmp_path: Path) -> None:
    port = free_port()
    (tmp_path / "data").mkdir()
    conf = tmp_path / "redis.conf"
    text = TEMPLATE.read_text().replace("@REDIS_PORT@", str(port))
    conf.write_text(text.replace("@REDIS_DIR@", str(tmp_path)))
    try:
        client = start(conf, port)
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        client.set(KEY, VALUE)
        shutdown(client, save=True)  # as `deploy/local/stack down` or a restart would
        client = start(conf, port)
        assert client.get(KEY) == VALUE
        shutdown(client, save=False)
    finally:
        pidfile = tmp_path / "redis.pid"
        if pidfile.is_file():  # still running after a failure
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pidfile.read_text().strip()), signal.SIGKILL)
