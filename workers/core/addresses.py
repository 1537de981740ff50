"""The forms of the values prodcat is configured with, checked when settings load.

Kafka bootstrap lists (:func:`check_bootstrap`), Redis URLs (:func:`check_redis_url`), bind
addresses (:func:`check_bind_host`), faust store URLs (:func:`check_store_url`), the model
store (:func:`check_model_store`), log levels (:func:`check_log_level`), and
:func:`redact_url`, the one way a URL is shown in messages and logs (password as ``***``).
Each check returns the value (normalized) or raises ``ValueError`` with a message for
people: what was given (never a password) and what is expected.
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import urlsplit

__all__ = [
    "FAUST_STORES",
    "LOG_LEVELS",
    "REDIS_SCHEMES",
    "check_bind_host",
    "check_bootstrap",
    "check_log_level",
    "check_model_store",
    "check_redis_url",
    "check_store_url",
    "redact_url",
]

REDIS_SCHEMES: Final = ("redis", "rediss", "unix")
FAUST_STORES: Final = ("memory", "rocksdb", "aerospike")
LOG_LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

_HOST = r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)"
_BROKER = re.compile(
    rf"(?:(?:PLAINTEXT|SSL|SASL_PLAINTEXT|SASL_SSL)://)?(?P<host>{_HOST})(?::(?P<port>[0-9]+))?",
    re.IGNORECASE,
)
_BIND_HOST = re.compile(_HOST)
_REDIS_FORMS = (
    "expected redis://[user:password@]host[:port][/db], rediss://... (TLS) "
    "or unix:///path/to/redis.sock"
)


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***``, fit for messages and logs (also
    for a URL that is not valid otherwise, e.g. with a port out of range)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    if parts.password is None:
        return url
    user = parts.username or ""
    where = parts.netloc.rsplit("@", 1)[1]
    return parts._replace(netloc=f"{user}:***@{where}").geturl()


def _port_ok(text: str | None) -> bool:
    return text is None or (text.isdigit() and 1 <= int(text) <= 65535)


def check_bootstrap(value: str) -> str:
    """A comma-separated list of ``host[:port]`` (optionally ``PROTOCOL://host:port``),
    returned with the blanks around the commas removed."""
    entries = [e.strip() for e in value.split(",")]
    if not value.strip() or any(not e for e in entries):
        raise ValueError(
            f"{value!r} is not a list of brokers: expected host:port[,host:port...], "
            "e.g. 127.0.0.1:9092 or kafka-1:9092,kafka-2:9092"
        )
    for entry in entries:
        match = _BROKER.fullmatch(entry)
        if match is None or not _port_ok(match.group("port")):
            raise ValueError(
                f"broker {entry!r} is not host:port (a port from 1 to 65535; no http:// "
                "or path): expected host:port[,host:port...], e.g. kafka-1:9092,kafka-2:9092"
            )
    return ",".join(entries)


def check_redis_url(value: str) -> str:
    """A ``redis://``, ``rediss://`` or ``unix://`` URL redis-py can open."""
    shown = redact_url(value)
    text = value.strip()
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"{shown!r} is not a Redis URL ({exc}); {_REDIS_FORMS}") from None
    if parts.scheme not in REDIS_SCHEMES:
        what = f"the scheme {parts.scheme}://" if parts.scheme else "no scheme"
        raise ValueError(f"{shown!r} is not a Redis URL: {what}; {_REDIS_FORMS}")
    if parts.scheme == "unix":
        if not parts.path:
            raise ValueError(f"{shown!r} names no socket path; {_REDIS_FORMS}")
        return text
    if not parts.hostname:
        raise ValueError(f"{shown!r} names no host; {_REDIS_FORMS}")
    if port == 0:
        raise ValueError(f"{shown!r}: port 0; {_REDIS_FORMS}")
    db = parts.path.strip("/")
    if db and not db.isdigit():
        raise ValueError(f"{shown!r}: database {db!r} is not a number; {_REDIS_FORMS}")
    return text


def check_bind_host(value: str) -> str:
    """A host name or IP address to bind a server to (no scheme, no port)."""
    if not _BIND_HOST.fullmatch(value.strip()):
        raise ValueError(
            f"{value!r} is not a host name or IP address to bind to (no scheme, no "
            "port: the port is a setting of its own), e.g. 127.0.0.1 or 0.0.0.0"
        )
    return value.strip()


def check_store_url(value: str) -> str:
    """A faust table store URL (``memory://``, ``rocksdb://``, ``aerospike://``)."""
    scheme, sep, _ = value.partition("://")
    if not sep or scheme not in FAUST_STORES:
        raise ValueError(
            f"{value!r} is not a faust store URL: expected "
            + ", ".join(f"{name}://" for name in FAUST_STORES)
        )
    return value


def check_model_store(value: object) -> object:
    """A model store folder: a path, or ``file:///path`` (returned as the path); other
    schemes have no store implementation."""
    text = str(value)
    if "://" not in text:
        return value
    scheme = text.split("://", 1)[0]
    if scheme != "file":
        raise ValueError(
            f"{text!r}: the model store is a directory (or file:///path); a "
            f"{scheme}:// store is not implemented: mount it as a directory"
        )
    return text.removeprefix("file://")


def check_log_level(value: str) -> str:
    """A Python log level name, any case (``WARN`` is ``WARNING``), returned in capitals."""
    level = value.strip().upper()
    level = "WARNING" if level == "WARN" else level
    if level not in LOG_LEVELS:
        raise ValueError(f"{value!r} is not a log level: expected one of {', '.join(LOG_LEVELS)}")
    return level
