"""Plumbing of the feedback app: faust credentials, async Redis, topic checks, shutdown.

Kept apart from :mod:`workers.feedback.app` so the app module reads as the event logic.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Final

import faust
import redis.asyncio as aioredis

from workers.core.errors import ConfigError, ProdcatError
from workers.core.settings import KafkaSettings, RedisSettings, Settings
from workers.process.httpserver import HealthServer

__all__ = [
    "FaustProcess",
    "async_redis",
    "close_loop",
    "co_partitioned",
    "crashed_service",
    "faust_credentials",
    "live_bundle_path",
    "message_headers",
    "new_faust_app",
]

log = logging.getLogger(__name__)

LEFTOVER_TASKS_TIMEOUT_S: Final = 10.0


def crashed_service(app: Any) -> BaseException | None:
    """The crash reason of the app or one of its main services (faust logs a crashed fetcher
    or agent and carries on doing nothing; the app stops instead)."""
    services = [app, app.consumer, app._fetcher, app.producer, app.tables]
    services += list(app.agents.values())
    for service in services:
        if getattr(service, "crashed", False):
            reason: BaseException = service.crash_reason or RuntimeError(f"{service!r} crashed")
            return reason
    return None


def close_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel what faust left running (bounded wait), then close the loop."""
    try:
        tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            _, pending = loop.run_until_complete(
                asyncio.wait(tasks, timeout=LEFTOVER_TASKS_TIMEOUT_S)
            )
            if pending:
                log.warning("%d faust tasks did not finish after cancelling", len(pending))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(
            asyncio.wait_for(loop.shutdown_default_executor(), LEFTOVER_TASKS_TIMEOUT_S)
        )
    except (TimeoutError, RuntimeError) as exc:
        log.warning("closing the event loop: %s", exc)
    finally:
        loop.close()


class FaustProcess:
    """The run-and-stop half of a faust app's lifecycle, shared by ``prodcat feedback`` and
    ``prodcat clicks``: :meth:`run` drives the subclass's ``_serve`` coroutine on a private
    event loop until :meth:`request_stop` (safe from a signal handler or another thread),
    :meth:`stop` releases the health server that ``start`` opened. ``_serve`` sets
    ``_loop`` and ``_stop_event`` while it runs, ``_running`` once the app is up, and
    ``_failure`` when the app stopped on an error."""

    #: How error messages name the app ("the feedback app").
    NAME: ClassVar[str] = "faust app"

    def __init__(self) -> None:
        self._http: HealthServer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._stop_requested = threading.Event()
        self._running = threading.Event()
        self._failure: BaseException | None = None

    @property
    def running(self) -> bool:
        """True between the faust app having started and the stop request."""
        return self._running.is_set()

    async def _serve(self) -> None:
        raise NotImplementedError

    def run(self) -> None:
        """Run the faust app until :meth:`request_stop`; returns after a clean stop.

        Raises :class:`ProdcatError` when a faust service crashed or the broker refused an
        output (the app was stopped; unfinished input is redelivered after a restart)."""
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._serve())
        finally:
            close_loop(loop)
        if self._failure is not None:
            raise ProdcatError(f"the {self.NAME} stopped on an error: {self._failure!r}")

    def request_stop(self) -> None:
        """Ask :meth:`run` to stop (from a signal handler or another thread)."""
        self._stop_requested.set()
        loop, event = self._loop, self._stop_event
        if loop is not None and event is not None and not loop.is_closed():
            # RuntimeError: the loop closed meanwhile, so run() is over anyway
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(event.set)

    def stop(self) -> None:
        """Release what ``start`` opened (call after :meth:`run` returned)."""
        self.request_stop()
        if self._http is not None:
            self._http.close()
            self._http = None


def new_faust_app(
    settings: Settings,
    *,
    app_id: str,
    client_id: str,
    store: str,
    state_dir: Path,
    partitions: int,
    **options: Any,
) -> Any:
    """A faust app as prodcat runs them: brokers and credentials from ``settings.kafka``,
    state in ``state_dir`` (created), no web server, the given partition count for
    tables, at-least-once with every output acknowledged by all replicas (acks=-1),
    a new group reading from the earliest offset. ``options`` add to or override that."""
    k = settings.kafka
    state_dir.mkdir(parents=True, exist_ok=True)
    config: dict[str, Any] = {
        "broker": [f"kafka://{host.strip()}" for host in k.bootstrap.split(",")],
        "broker_credentials": faust_credentials(k),
        "broker_client_id": f"{k.client_id}-{client_id}",
        "store": store,
        "datadir": str(state_dir),
        "web_enabled": False,
        "topic_disable_leader": True,
        "topic_partitions": partitions,
        "topic_replication_factor": k.replication_factor,
        "consumer_auto_offset_reset": "earliest",
        "producer_acks": -1,
        "producer_linger": 0.0,
        "processing_guarantee": "at_least_once",
    }
    config.update(options)
    return faust.App(app_id, **config)


def message_headers(raw: Any) -> list[tuple[str, bytes]]:
    if not raw:
        return []
    items = raw.items() if isinstance(raw, Mapping) else raw
    return [(str(k), v if isinstance(v, bytes) else str(v or "").encode()) for k, v in items]


def live_bundle_path(settings: Settings) -> Path:
    """PRODCAT_MODEL_BUNDLE if set, else the live version of the model store."""
    if settings.model.bundle is not None:
        return settings.model.bundle
    from workers.lifecycle.control import read_control
    from workers.lifecycle.store import open_store

    try:
        version = read_control(settings).live_version
    except ProdcatError as exc:
        raise ConfigError(f"cannot read the live model version: {exc}") from exc
    if version is None:
        raise ConfigError(
            "no model bundle: the feedback app checks categories against the live model's "
            "taxonomy, and no version is live; pass --bundle DIR or set PRODCAT_MODEL_BUNDLE"
        )
    return open_store(settings.model.store).fetch(version)


def co_partitioned(admin_conf: Mapping[str, Any], topics: Sequence[str]) -> int:
    """The common partition count of the input topics; faust tables need it to be one."""
    from confluent_kafka.admin import AdminClient

    metadata = AdminClient(dict(admin_conf)).list_topics(timeout=15.0).topics
    counts = {name: len(metadata[name].partitions) for name in topics if name in metadata}
    if len(set(counts.values())) > 1:
        listing = ", ".join(f"{name}: {n}" for name, n in counts.items())
        raise ConfigError(
            f"the feedback app's input topics must have the same number of partitions "
            f"(they are joined by product_id): {listing}. Recreate or extend them to match "
            "PRODCAT_KAFKA_PARTITIONS."
        )
    return next(iter(counts.values()))


def async_redis(settings: RedisSettings) -> aioredis.Redis:
    options = settings.client_options()
    client: aioredis.Redis = aioredis.Redis.from_url(
        settings.url,
        socket_timeout=max(settings.socket_timeout_s, 2.0),
        socket_connect_timeout=max(settings.socket_timeout_s, 2.0),
        **options,
    )
    return client


def faust_credentials(kafka: KafkaSettings) -> Any:
    """faust's broker credentials for the configured security protocol (None: plaintext)."""
    protocol = kafka.security_protocol
    if protocol == "PLAINTEXT":
        return None
    context: ssl.SSLContext | None = None
    if protocol in ("SSL", "SASL_SSL"):
        context = ssl.create_default_context(
            cafile=str(kafka.ssl_ca_location) if kafka.ssl_ca_location else None
        )
        if kafka.ssl_certificate_location is not None:
            context.load_cert_chain(
                str(kafka.ssl_certificate_location),
                str(kafka.ssl_key_location) if kafka.ssl_key_location else None,
                kafka.ssl_key_password.get_secret_value() if kafka.ssl_key_password else None,
            )
    if protocol == "SSL":
        return faust.SSLCredentials(context)
    return faust.SASLCredentials(
        username=kafka.sasl_username,
        password=kafka.sasl_password.get_secret_value() if kafka.sasl_password else None,
        mechanism=kafka.sasl_mechanism or "PLAIN",
        ssl_context=context,
    )
