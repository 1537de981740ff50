"""The embedded HTTP server: ``/metrics``, ``/healthz`` and ``/readyz``.

A plain :class:`http.server.ThreadingHTTPServer` on a daemon thread, so a stuck
scrape can never block the worker loop and the server never keeps the process
alive. It installs no signal handlers.

* ``/metrics``: the worker's Prometheus registry (text format 0.0.4).
* ``/healthz``: 200 while the process serves HTTP (liveness).
* ``/readyz``: 200 only when the readiness callback says so; the JSON body lists
  each check, e.g. ``{"ready": false, "checks": {"partitions_assigned": false, ...}}``.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST

__all__ = ["HealthServer", "ReadinessCheck"]

log = logging.getLogger(__name__)

ReadinessCheck = Callable[[], Mapping[str, bool]]
"""Returns named checks; ready when every one is True (and there is at least one)."""


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._send(HTTPStatus.OK, self.server.metrics(), CONTENT_TYPE_LATEST)
        elif path == "/healthz":
            self._send(HTTPStatus.OK, b'{"alive": true}\n', "application/json")
        elif path == "/readyz":
            try:
                checks = dict(self.server.readiness())
            except Exception:  # a failing check means "not ready", never a crashed server
                log.exception("readiness check failed")
                checks = {"readiness_check": False}
            ready = bool(checks) and all(checks.values())
            body = json.dumps({"ready": ready, "checks": checks}).encode() + b"\n"
            status = HTTPStatus.OK if ready else HTTPStatus.SERVICE_UNAVAILABLE
            self._send(status, body, "application/json")
        else:
            self._send(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain; charset=utf-8")

    def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        log.debug("http: " + format, *args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self, address: tuple[str, int], metrics: Callable[[], bytes], readiness: ReadinessCheck
    ) -> None:
        self.metrics = metrics
        self.readiness = readiness
        super().__init__(address, _Handler)


class HealthServer:
    """Serve metrics and health on ``host:port`` from a daemon thread."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        metrics: Callable[[], bytes],
        readiness: ReadinessCheck,
    ) -> None:
        self._server = _Server((host, port), metrics, readiness)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.2},
            name="prodcat-http",
            daemon=True,
        )

    @property
    def port(self) -> int:
        """The bound port (the OS picks one when ``port`` is 0)."""
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()
        log.info("metrics and health on http://%s:%d", *self._server.server_address[:2])

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=2.0)
