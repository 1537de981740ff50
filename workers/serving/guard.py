"""ASGI middleware around the whole API: bearer-token auth, request metrics, access logs,
and a JSON 500 (never a traceback) for what escapes a route.

Pure ASGI, not Starlette's ``BaseHTTPMiddleware``: it adds no task or stream per request.
The route template for metrics and logs comes from ``scope["route"]``, which Starlette's
router sets on the shared scope.

Auth: with ``PRODCAT_SERVE_TOKEN`` set, every path except :data:`PUBLIC` needs
``Authorization: Bearer <token>`` (compared in constant time); otherwise 401 with
``WWW-Authenticate: Bearer``. Health and the OpenAPI document stay open, as probes and
client generators need them.

Access log: one line per request on the ``prodcat.access`` logger (method, path, route,
status, milliseconds, client); with ``PRODCAT_LOG_JSON`` the fields are in the ``http``
key of the JSON line.
"""

from __future__ import annotations

import hmac
import logging
import time
from typing import Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from workers.serving.errors import error_response
from workers.serving.metrics import ServeMetrics

__all__ = ["PUBLIC", "Guard"]

log = logging.getLogger(__name__)
access = logging.getLogger("prodcat.access")

PUBLIC: Final = frozenset({"/openapi.json", "/v2/health/live", "/v2/health/ready"})
_UNMATCHED: Final = "unmatched"


class Guard:
    """Auth, metrics, access log and the last-resort 500 around ``app``."""

    def __init__(
        self,
        app: ASGIApp,
        metrics: ServeMetrics,
        *,
        token: str | None = None,
        access_log: bool = True,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self._token = f"Bearer {token}".encode() if token else None
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_status(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
            await send(message)

        try:
            if (
                self._token is not None
                and scope["path"] not in PUBLIC
                and not self._authorized(scope)
            ):
                await error_response(
                    401, "unauthorized",
                    "missing or wrong bearer token: send 'Authorization: Bearer <token>' "
                    "(the server's PRODCAT_SERVE_TOKEN)",
                    headers={"WWW-Authenticate": 'Bearer realm="prodcat"'},
                )(scope, receive, send_status)  # fmt: skip
            else:
                await self.app(scope, receive, send_status)
        except Exception:
            log.exception("%s %s failed", scope["method"], scope["path"])
            if not response_started:
                await error_response(
                    500, "internal_error", "internal error; the server log has the details"
                )(scope, receive, send_status)
        finally:
            self._record(scope, status, time.perf_counter() - started)

    def _authorized(self, scope: Scope) -> bool:
        assert self._token is not None
        for name, value in scope["headers"]:
            if name == b"authorization":
                return hmac.compare_digest(value, self._token)
        return False

    def _record(self, scope: Scope, status: int, seconds: float) -> None:
        route = scope.get("route")
        template = getattr(route, "path", _UNMATCHED)
        method = scope["method"]
        self.metrics.requests.labels(template, method, str(status)).inc()
        self.metrics.request_seconds.labels(template).observe(seconds)
        if self.access_log and access.isEnabledFor(logging.INFO):
            client = scope.get("client")
            fields = {
                "method": method,
                "path": scope["path"],
                "route": template,
                "status": status,
                "ms": round(seconds * 1000, 2),
                "client": client[0] if client else None,
            }
            access.info(
                "%s %s %d %.1f ms", method, scope["path"], status, seconds * 1000,
                extra={"http": fields},
            )  # fmt: skip
