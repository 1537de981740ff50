"""What the ``prodcat`` commands share: connection flags, settings from flags, handler types."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from workers.core.settings import Settings, load_settings

__all__ = [
    "Handler",
    "Register",
    "Subparsers",
    "add_connection_flags",
    "add_service_flags",
    "settings_from",
]

Handler = Callable[[argparse.Namespace, Settings], int]
"""What a subcommand runs: the parsed flags and the settings they override; the exit status."""

Subparsers = Any
"""``ArgumentParser.add_subparsers()``'s return value (argparse keeps its type private)."""

Register = Callable[[Subparsers, Callable[[argparse.ArgumentParser], None]], None]
"""A command group's ``register(subparsers, add_connection_flags)``: adds its subcommands,
each with ``handler`` set to a :data:`Handler`. The offline commands of ``export`` are
registered through the entry-point group ``prodcat.commands`` in this form."""


def add_connection_flags(parser: argparse.ArgumentParser) -> None:
    """``--bootstrap``, ``--redis-url``, ``--data-dir``, ``--log-level``, ``--log-json``."""
    group = parser.add_argument_group("connections (override PRODCAT_* settings)")
    group.add_argument("--bootstrap", help="Kafka bootstrap servers (PRODCAT_KAFKA_BOOTSTRAP)")
    group.add_argument("--redis-url", help="Redis URL (PRODCAT_REDIS_URL)")
    group.add_argument("--data-dir", type=Path, help="shared catalogs folder (PRODCAT_DATA_DIR)")
    group.add_argument("--log-level", help="log level (PRODCAT_LOG_LEVEL)")
    group.add_argument("--log-json", action="store_true", default=None, help="JSON log lines")


def add_service_flags(parser: argparse.ArgumentParser, instance_help: str) -> None:
    """``--metrics-port`` and ``--instance`` of the long-running processes."""
    parser.add_argument(
        "--metrics-port",
        type=int,
        help="port of /metrics, /healthz, /readyz; 0 disables (PRODCAT_METRICS_PORT)",
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
