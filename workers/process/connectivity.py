"""Quick reachability checks for Kafka and Redis, with errors that say what to do.

Workers call these at start-up and the test suite calls them before touching a
service, so a missing broker shows up as one clear :class:`ServiceUnavailableError`
within a bounded time instead of a hang or a page of client retries::

    check_kafka(settings, timeout_s=5.0)
    check_redis(settings.redis, timeout_s=2.0)
"""

from __future__ import annotations

import logging
import socket
import time
from typing import Any

import redis
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from pydantic import SecretStr
from redis.backoff import NoBackoff
from redis.retry import Retry

from workers.core.addresses import redact_url
from workers.core.errors import ServiceUnavailableError
from workers.core.settings import KafkaSettings, RedisSettings, Settings
from workers.kafka.clients import admin_config

__all__ = ["check_kafka", "check_redis", "redact_url"]

_log = logging.getLogger(__name__)

_START_HINT = "start it with `deploy/local/stack up`"


def _kafka_conf(target: Settings | KafkaSettings | str) -> dict[str, Any]:
    if isinstance(target, Settings):
        return admin_config(target.kafka, "check")
    if isinstance(target, KafkaSettings):
        return admin_config(target, "check")
    return {"bootstrap.servers": target}


def _parse_bootstrap(bootstrap: str) -> list[tuple[str, int]] | None:
    """``host:port`` pairs of a bootstrap list, or None if one of them is not plain."""
    addresses: list[tuple[str, int]] = []
    for entry in bootstrap.split(","):
        address = entry.strip().rsplit("://", 1)[-1]
        host, sep, port = address.rpartition(":")
        if not sep or not port.isdigit() or not host:
            return None
        addresses.append((host.strip("[]"), int(port)))
    return addresses or None


def _refused_everywhere(bootstrap: str, timeout_s: float) -> str | None:
    """Why no bootstrap address accepts a TCP connection, or None if one does (or unsure).

    Lets a stopped broker fail at once instead of after the whole metadata timeout.
    """
    addresses = _parse_bootstrap(bootstrap)
    if addresses is None:
        return None
    reasons: list[str] = []
    for host, port in addresses:
        try:
            with socket.create_connection((host, port), timeout=timeout_s):
                return None
        except ConnectionRefusedError:
            reasons.append(f"{host}:{port} refused the connection")
        except OSError:  # timeouts, DNS trouble: leave the verdict to the Kafka client
            return None
    return "; ".join(reasons)


def check_kafka(target: Settings | KafkaSettings | str, timeout_s: float = 5.0) -> None:
    """Return once a Kafka broker answers a metadata request, or raise within ``timeout_s``.

    ``target`` is the settings object, its ``kafka`` section, or a bootstrap string
    such as ``"127.0.0.1:9092"``. Raises :class:`ServiceUnavailableError` naming the
    bootstrap servers and the setting to change.
    """
    if timeout_s <= 0:
        raise ValueError(f"timeout_s must be positive, got {timeout_s!r}")
    conf = _kafka_conf(target)
    bootstrap = str(conf["bootstrap.servers"])
    # A Python logger keeps librdkafka's per-retry "Connection refused" lines off stderr;
    # the one error raised below says the same thing once.
    conf["logger"] = _log
    conf["socket.connection.setup.timeout.ms"] = max(1000, int(timeout_s * 1000))
    started = time.monotonic()
    refused = _refused_everywhere(bootstrap, timeout_s)
    if refused is not None:
        raise ServiceUnavailableError(
            f"Kafka is not reachable at {bootstrap} ({refused}): "
            f"{_START_HINT} or set PRODCAT_KAFKA_BOOTSTRAP"
        )
    detail: str
    try:
        metadata = AdminClient(conf).list_topics(timeout=timeout_s)
    except KafkaException as exc:
        error = exc.args[0] if exc.args else exc
        detail = error.str() if hasattr(error, "str") else str(error)
    except (ValueError, TypeError) as exc:  # bad configuration, e.g. an empty bootstrap
        raise ServiceUnavailableError(
            f"Kafka client configuration for {bootstrap!r} is invalid: {exc}. "
            "Check PRODCAT_KAFKA_BOOTSTRAP and the other PRODCAT_KAFKA_* settings."
        ) from exc
    else:
        if metadata.brokers:
            _log.debug(
                "Kafka at %s answered in %.3f s (%d brokers)",
                bootstrap,
                time.monotonic() - started,
                len(metadata.brokers),
            )
            return
        detail = "the cluster reported no brokers"
    raise ServiceUnavailableError(
        f"Kafka is not reachable at {bootstrap} after {timeout_s:.1f} s ({detail}): "
        f"{_START_HINT} or set PRODCAT_KAFKA_BOOTSTRAP"
    )


def check_redis(
    target: Settings | RedisSettings | str,
    timeout_s: float = 2.0,
    password: str | SecretStr | None = None,
) -> None:
    """Return once Redis answers PING, or raise within about ``timeout_s``.

    ``target`` is the settings object, its ``redis`` section (whose password, user
    and CA bundle are used), or a URL such as ``"redis://127.0.0.1:6379/0"``. An
    explicit ``password`` wins over the one in the settings. Client retries are
    off, so a closed port fails at once and a silent one after ``timeout_s``.
    """
    if timeout_s <= 0:
        raise ValueError(f"timeout_s must be positive, got {timeout_s!r}")
    section = target.redis if isinstance(target, Settings) else target
    options: dict[str, Any] = {}
    if isinstance(section, RedisSettings):
        url = section.url
        options = section.client_options()  # password, user, CA bundle: as the workers use
    else:
        url = section
    if password is not None:
        options["password"] = (
            password.get_secret_value() if isinstance(password, SecretStr) else password
        )
    shown = redact_url(url)
    try:
        client = redis.Redis.from_url(
            url,
            socket_connect_timeout=timeout_s,
            socket_timeout=timeout_s,
            retry=Retry(NoBackoff(), 0),
            **options,
        )
    except ValueError as exc:
        raise ServiceUnavailableError(
            f"Redis URL {shown!r} is invalid: {exc}. Set PRODCAT_REDIS_URL to a "
            "redis:// or rediss:// URL, e.g. redis://127.0.0.1:6379/0"
        ) from exc
    try:
        client.ping()
    except redis.AuthenticationError as exc:
        raise ServiceUnavailableError(
            f"Redis at {shown} refused the credentials ({exc}): "
            "check PRODCAT_REDIS_PASSWORD and PRODCAT_REDIS_USERNAME"
        ) from exc
    except (redis.RedisError, OSError) as exc:
        raise ServiceUnavailableError(
            f"Redis is not reachable at {shown} within {timeout_s:.1f} s ({exc}): "
            f"{_START_HINT} or set PRODCAT_REDIS_URL"
        ) from exc
    finally:
        client.close()
