"""``prodcat serve``: the Starlette app on uvicorn, with explicit start, run and stop.

::

    app = ServeApp(settings)
    app.start()         # models (live or local), Redis, metrics server, bound API socket
    app.run()           # uvicorn until request_stop(); in-flight requests finish
    app.stop()          # model followers, batchers' threads, Redis, metrics server

Starlette on uvicorn (README, "Serving"): Starlette is the small ASGI core FastAPI is built
on; prodcat validates with msgspec, as everywhere else, and builds the OpenAPI document
from the same Structs, so FastAPI's pydantic layer would only add work per request.
uvicorn with uvloop and httptools is the fastest well-kept ASGI server for one process.

One process serves both kinds. The product model follows ``prodcat.models`` exactly as a
classify worker does (:class:`~workers.lifecycle.swap.ModelSwitcher`: live version from
the store, else ``PRODCAT_MODEL_BUNDLE``); the query model follows its own control topic
``PRODCAT_TOPICS_QUERY_MODELS`` (else ``PRODCAT_SERVE_QUERY_BUNDLE``) with the same code,
and is optional: without one, ``/v1/queries`` answers 503 until one is published.

Signals: uvicorn's own handlers are off (:class:`_Server`), as for every embedded server
here; :func:`workers.process.signals.serve` calls :meth:`ServeApp.request_stop` on the
first SIGTERM/SIGINT (uvicorn stops accepting, finishes in-flight requests within
``PRODCAT_CLASSIFY_DRAIN_TIMEOUT_S``) and exits at once on the second.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import socket
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from typing import Any

import msgspec
import uvicorn
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from workers.classify.cache import ResultCache
from workers.core.errors import ConfigError
from workers.core.settings import Settings
from workers.kafka.clients import admin_config
from workers.kafka.topics import ensure_topics, topic_specs
from workers.lifecycle.modelset import ModelSet
from workers.lifecycle.swap import ModelSwitcher
from workers.process.httpserver import HealthServer
from workers.serving.batcher import Batcher
from workers.serving.context import ServeContext
from workers.serving.engine import ProductEngine, QueryEngine
from workers.serving.errors import RequestError, error_response
from workers.serving.guard import Guard
from workers.serving.metrics import ServeMetrics
from workers.serving.oip import oip_routes
from workers.serving.routes import v1_routes

__all__ = ["ServeApp", "query_settings"]

log = logging.getLogger(__name__)

CONTROL_READ_TIMEOUT_S = 15.0
WARM_SAMPLE = 64


def query_settings(settings: Settings) -> Settings:
    """The settings the query model's lifecycle runs with: its own control topic, local
    bundle and top-k (the store is shared: versions are unique)."""
    return settings.with_overrides(
        topics={"models": settings.topics.query_models},
        model={"bundle": settings.serve.query_bundle, "top_k": settings.serve.query_top_k},
    )


def prodcat_version() -> str:
    try:
        return package_version("prodcat")
    except PackageNotFoundError:
        return "0+unknown"


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers (the CLI's :func:`serve` owns signals)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _error_body(request: Request, error: RequestError) -> Response:
    if request.url.path.startswith("/v2"):  # the Open Inference Protocol's error shape
        return Response(
            b'{"error":%s}' % _json_str(error.message), error.status,
            headers=error.headers, media_type="application/json",
        )  # fmt: skip
    return error_response(error.status, error.code, error.message, error.field, error.headers)


def _json_str(text: str) -> bytes:
    return msgspec.json.encode(text)


class ServeApp:
    """The HTTP API process: build with settings, then :meth:`start`, :meth:`run`, :meth:`stop`."""

    def __init__(self, settings: Settings, *, registry: CollectorRegistry | None = None) -> None:
        self.settings = settings
        self.metrics = ServeMetrics(registry)
        self.port: int | None = None
        self._closers: list[Callable[[], object]] = []
        self._server: _Server | None = None
        self._socket: socket.socket | None = None
        self.product_switcher: ModelSwitcher | None = None
        self.query_switcher: ModelSwitcher | None = None
        self._stop_requested = False  # a signal during start() stops run() at once

    # ------------------------------------------------------------------ start

    def start(self) -> None:
        s = self.settings
        lifecycle = self.metrics.lifecycle
        t = s.topics
        used = {t.models, t.query_models}
        ensure_topics(admin_config(s.kafka), [x for x in topic_specs(s) if x.name in used], 15.0)

        self.product_switcher = products = ModelSwitcher(s, lifecycle)
        self._closers.append(products.stop)
        product_models = products.initial(CONTROL_READ_TIMEOUT_S)
        self.query_switcher = queries = ModelSwitcher(query_settings(s), lifecycle,
                                                      store=products.store)  # fmt: skip
        self._closers.append(queries.stop)
        query_models: ModelSet | None
        try:
            query_models = queries.initial(CONTROL_READ_TIMEOUT_S)
        except ConfigError as exc:
            log.warning("serving products only until a query model is published: %s", exc)
            query_models = None

        cache = None
        if s.serve.cache:
            cache = ResultCache(
                s.redis, on_error=lambda op: self.metrics.cache_errors.labels(op).inc()
            )
            self._closers.append(cache.close)
        self.products = ProductEngine(product_models, self.metrics, cache)
        self.queries = QueryEngine(query_models, self.metrics)
        for kind, models in (("products", product_models), ("queries", query_models)):
            if models is not None:
                self.metrics.model.labels(kind, models.version).set(1)
        products.start(sample=self.products.recent_texts)
        queries.start(sample=self.queries.recent_texts)

        serve = s.serve
        product_batcher = Batcher(
            "products", self.products.run, self.metrics,
            enabled=serve.batching, wait_s=serve.batch_wait_ms / 1000.0,
            max_items=serve.batch_max_items,
            before_batch=self._swapper("products", products, self.products),
        )  # fmt: skip
        query_batcher = Batcher(
            "queries", self.queries.run, self.metrics,
            enabled=serve.batching, wait_s=serve.batch_wait_ms / 1000.0,
            max_items=serve.batch_max_items,
            before_batch=self._swapper("queries", queries, self.queries),
        )  # fmt: skip
        self.context = ServeContext(
            serve, self.metrics, self.products, self.queries, product_batcher, query_batcher,
            prodcat_version(),
        )  # fmt: skip

        if s.metrics.port:
            try:
                health = HealthServer(
                    s.metrics.host, s.metrics.port,
                    metrics=self.metrics.exposition, readiness=self._readiness,
                )  # fmt: skip
            except OSError as exc:
                raise ConfigError(
                    f"cannot serve metrics on {s.metrics.host}:{s.metrics.port} ({exc}); set "
                    "PRODCAT_METRICS_PORT (or --metrics-port) to a free port, 0 to disable"
                ) from exc
            self._closers.append(health.close)
            health.start()

        self._socket = sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((serve.host, serve.port))
        except OSError as exc:
            sock.close()
            raise ConfigError(
                f"cannot serve the API on {serve.host}:{serve.port} ({exc}); set "
                "PRODCAT_SERVE_PORT (or --port) to a free port"
            ) from exc
        self._closers.append(sock.close)
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.asgi_app(),
            loop="uvloop",
            http="httptools",
            lifespan="on",
            access_log=False,
            log_config=None,
            server_header=False,
            timeout_graceful_shutdown=max(1, int(s.classify.drain_timeout_s)),
            backlog=4096,
        )
        self._server = _Server(config)
        # As in the classify worker: the loaded models and modules live as long as the
        # process (keep them out of full GC passes), and the model thread gives the GIL up
        # at every onnxruntime and numpy call, so the event loop should get it back within
        # PRODCAT_CLASSIFY_SWITCH_INTERVAL_MS, not Python's default 5 ms.
        gc.collect()
        gc.freeze()
        sys.setswitchinterval(s.classify.switch_interval_ms / 1000.0)

    def _swapper(
        self, kind: str, switcher: ModelSwitcher, engine: ProductEngine | QueryEngine
    ) -> Callable[[], None]:
        lifecycle, gauge = self.metrics.lifecycle, self.metrics.model

        def before_batch() -> None:
            pending = switcher.take()
            if pending is None:
                return
            with lifecycle.swap_seconds.time():
                old, engine.models = engine.models, pending
            if old is not None:
                gauge.remove(kind, old.version)
            gauge.labels(kind, pending.version).set(1)
            lifecycle.swaps.labels(pending.version).inc()
            log.info("%s: now serving %s", kind, pending.describe())

        return before_batch

    def _readiness(self) -> dict[str, bool]:
        return {
            "product_model_loaded": self.products.models is not None,
            "api_listening": self._server is not None and self._server.started,
        }

    def asgi_app(self) -> Guard:
        """The whole API as one ASGI app (Starlette inside the :class:`Guard`)."""
        ctx = self.context

        @contextlib.asynccontextmanager
        async def lifespan(_app: Starlette) -> AsyncIterator[None]:
            ctx.product_batcher.start()
            ctx.query_batcher.start()
            try:
                yield
            finally:
                await ctx.product_batcher.close()
                await ctx.query_batcher.close()

        async def refused(request: Request, exc: Exception) -> Response:
            assert isinstance(exc, RequestError)
            return _error_body(request, exc)

        async def http_error(request: Request, exc: Exception) -> Response:
            assert isinstance(exc, HTTPException)
            code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http")
            error = RequestError(exc.status_code, code, f"{exc.detail}: {request.url.path}",
                                 headers=dict(exc.headers or {}))  # fmt: skip
            return _error_body(request, error)

        handlers: dict[Any, Any] = {RequestError: refused, HTTPException: http_error}
        app = Starlette(
            routes=[*v1_routes(ctx), *oip_routes(ctx)],
            exception_handlers=handlers,
            lifespan=lifespan,
        )
        token = self.settings.serve.token
        return Guard(
            app,
            self.metrics,
            token=token.get_secret_value() if token is not None else None,
            access_log=self.settings.serve.access_log,
        )

    # ------------------------------------------------------------------ run, stop

    def run(self) -> None:
        if self._stop_requested:  # SIGTERM while start() loaded the models
            return
        assert self._server is not None and self._socket is not None, "start() first"
        log.info(
            "prodcat serve: API on http://%s:%d (products %s; queries %s)",
            self.settings.serve.host,
            self.port,
            self.products.models.describe() if self.products.models else "none",
            self.queries.models.describe() if self.queries.models else "none",
        )
        self._server.run(sockets=[self._socket])

    def request_stop(self) -> None:
        self._stop_requested = True
        if self._server is not None:
            self._server.should_exit = True

    def stop(self) -> None:
        for close in reversed(self._closers):
            try:
                close()
            except Exception:
                log.exception("closing prodcat serve")
        self._closers.clear()
        log.info("prodcat serve stopped")
