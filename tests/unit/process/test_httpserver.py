"""workers.process.httpserver: /metrics, /healthz and /readyz."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request

import pytest

from workers.classify.metrics import ClassifyMetrics
from workers.process.httpserver import HealthServer


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_health_server() -> None:
    ready = {"partitions_assigned": False, "model_loaded": True}
    m = ClassifyMetrics()
    server = HealthServer("127.0.0.1", _free_port(), metrics=m.exposition, readiness=lambda: ready)
    server.start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        with urllib.request.urlopen(f"{base}/healthz", timeout=5) as r:
            assert r.status == 200
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(f"{base}/readyz", timeout=5)
        assert info.value.code == 503
        assert json.loads(info.value.read())["checks"]["partitions_assigned"] is False
        ready["partitions_assigned"] = True
        with urllib.request.urlopen(f"{base}/readyz", timeout=5) as r:
            assert r.status == 200
        with urllib.request.urlopen(f"{base}/metrics", timeout=5) as r:
            assert b"prodcat_in_flight" in r.read()
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(f"{base}/nope", timeout=5)
    finally:
        server.close()
