"""What the ``prodcat`` commands share: the parser class, setting flags, settings from flags.

Every command gets ``--log-level`` and ``--log-json``; only a command that talks to Kafka,
Redis or the shared catalogs gets ``--bootstrap``, ``--redis-url`` or ``--data-dir``
(:func:`add_connection_flags`). ``--help`` shows each flag's default; a flag that overrides
a setting names its ``PRODCAT_*`` variable and the setting's default (:func:`setting_help`).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from workers.core.environment import env_name
from workers.core.settings import Settings, load_settings, setting_default

__all__ = [
    "ConnectionFlags",
    "Handler",
    "HelpFormatter",
    "Parser",
    "Register",
    "Subparsers",
    "add_connection_flags",
    "add_service_flags",
    "setting_help",
    "settings_from",
]

Handler = Callable[[argparse.Namespace, Settings], int]
"""What a subcommand runs: the parsed flags and the settings they override; the exit status."""

Subparsers = Any
"""``ArgumentParser.add_subparsers()``'s return value (argparse keeps its type private)."""


class ConnectionFlags(Protocol):
    """:func:`add_connection_flags`, as the command groups receive it."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        *,
        kafka: bool = False,
        redis: bool = False,
        data: bool = False,
    ) -> None: ...


Register = Callable[[Subparsers, ConnectionFlags], None]
"""A command group's ``register(subparsers, add_connection_flags)``: adds its subcommands,
each with ``handler`` set to a :data:`Handler`, and the connection flags each one needs.
The offline commands of ``export`` are registered through the entry-point group
``prodcat.commands`` in this form."""


class HelpFormatter(argparse.HelpFormatter):
    """Appends ``(default: X)`` to an option's help when it has a default worth showing
    (not None, False or empty) and its help does not mention one already."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (
            not action.option_strings
            or "(default" in text
            or default is None
            or default is False
            or default is argparse.SUPPRESS
            or (isinstance(default, list | tuple) and not default)
        ):
            return action.help
        return f"{text} (default: %(default)s)"


class Parser(argparse.ArgumentParser):
    """The ``prodcat`` parsers: :class:`HelpFormatter` unless told otherwise (subcommand
    parsers are made of the same class, so every level shows its defaults)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)


def setting_help(text: str, section: str | None, field: str) -> str:
    """``text`` with the setting a flag overrides: its variable and its default, e.g.
    ``Redis URL (PRODCAT_REDIS_URL; default: redis://127.0.0.1:6379/0)``."""
    default = setting_default(section, field)
    shown = "" if default is None or default is False else f"; default: {default}"
    return f"{text} ({env_name(section, field)}{shown})".replace("%", "%%")


def add_connection_flags(
    parser: argparse.ArgumentParser,
    *,
    kafka: bool = False,
    redis: bool = False,
    data: bool = False,
) -> None:
    """``--log-level`` and ``--log-json`` always; ``--bootstrap`` (``kafka``),
    ``--redis-url`` (``redis``) and ``--data-dir`` (``data``) for commands that use them."""
    if kafka or redis or data:
        group = parser.add_argument_group("connections (override PRODCAT_* settings)")
        if kafka:
            group.add_argument(
                "--bootstrap", help=setting_help("Kafka bootstrap servers", "kafka", "bootstrap")
            )
        if redis:
            group.add_argument("--redis-url", help=setting_help("Redis URL", "redis", "url"))
        if data:
            group.add_argument(
                "--data-dir",
                type=Path,
                help=setting_help("shared catalogs folder", None, "data_dir"),
            )
    logs = parser.add_argument_group("logging")
    logs.add_argument(
        "--log-level",
        help=setting_help("log level; DEBUG also shows TensorFlow's own lines", None, "log_level"),
    )
    logs.add_argument(
        "--log-json",
        action="store_true",
        default=None,
        help=setting_help("one JSON object per log line", None, "log_json"),
    )


def add_service_flags(parser: argparse.ArgumentParser, instance_help: str) -> None:
    """``--metrics-port`` and ``--instance`` of the long-running processes."""
    parser.add_argument(
        "--metrics-port",
        type=int,
        help=setting_help("port of /metrics, /healthz, /readyz; 0 disables", "metrics", "port"),
    )
    parser.add_argument("--instance", help=instance_help)


def settings_from(args: argparse.Namespace) -> Settings:
    """Environment settings with this invocation's flags applied on top."""
    overrides: dict[str, Any] = {}
    if getattr(args, "bootstrap", None):
        overrides["kafka"] = {"bootstrap": args.bootstrap}
    if getattr(args, "redis_url", None):
        overrides["redis"] = {"url": args.redis_url}
    if getattr(args, "data_dir", None):
        overrides["data_dir"] = args.data_dir
    if getattr(args, "log_level", None):
        overrides["log_level"] = args.log_level
    if getattr(args, "log_json", None):
        overrides["log_json"] = True
    if getattr(args, "bundle", None) and getattr(args, "command", "") != "predict":
        overrides["model"] = {"bundle": args.bundle}
    if getattr(args, "metrics_port", None) is not None:
        overrides["metrics"] = {"port": args.metrics_port}
    return load_settings(**overrides)
