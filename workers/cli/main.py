"""The ``prodcat`` command line: one parser, one module per command group.

Every subcommand reads :class:`workers.core.settings.Settings` from the environment
first; flags given on the command line override it (:mod:`workers.cli.common`). The
command groups:

* :mod:`workers.cli.serve`: ``classify``, ``feedback`` (the long-running processes);
* :mod:`workers.cli.models`: ``publish``, ``models`` (the model lifecycle);
* :mod:`workers.cli.files`: ``predict``, ``labels dump``;
* :mod:`workers.cli.demo`: ``demo``;
* :mod:`workers.cli.retrain`: ``retrain`` (runs the retraining script);
* the offline commands ``train``, ``export`` and ``heldout`` belong to the ``export``
  package and arrive through the entry-point group ``prodcat.commands``
  (``pyproject.toml``): ``workers`` never imports ``export``, and an installation without
  it still has every serving command.

Handlers import what they run lazily, so the serving commands never load TensorFlow.
``prodcat --version`` prints the installed version. Settings are checked before any
handler runs (exit 2 naming the bad variables), and ``PRODCAT_*`` variables that are no
setting are logged as warnings with the closest setting's name.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, entry_points, version
from typing import Final

from workers.cli import demo, files, models, retrain, serve
from workers.cli.common import Handler, Parser, Register, add_connection_flags, settings_from
from workers.cli.quiet import NativeNoiseFilter, is_debug, quiet_libraries
from workers.core.environment import unknown_variables
from workers.core.errors import ProdcatError
from workers.core.logs import setup_logging
from workers.core.settings import SettingsError, setting_variables

__all__ = ["COMMAND_GROUP", "build_parser", "main"]

log = logging.getLogger("prodcat")

COMMAND_GROUP: Final = "prodcat.commands"
"""Entry-point group of command plugins: each names a :data:`~workers.cli.common.Register`."""

_GROUPS: Final[tuple[Register, ...]] = (
    files.register,
    serve.register,
    demo.register,
    models.register,
    retrain.register,
)


def _plugins() -> list[Register]:
    """The installed command plugins (the offline commands of ``export``), by name."""
    found: list[Register] = []
    for point in sorted(entry_points(group=COMMAND_GROUP), key=lambda p: p.name):
        try:
            found.append(point.load())
        except Exception as exc:  # a broken plugin must not take the serving commands down
            print(f"prodcat: commands {point.value} unavailable: {exc}", file=sys.stderr)
    return found


def installed_version() -> str:
    """The installed distribution's version (``pyproject.toml``)."""
    try:
        return version("prodcat")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="prodcat", description="Real-time product categorization.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {installed_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in _plugins():
        register(sub, add_connection_flags)
    for command in sub.choices.values():  # the offline commands: they may load TensorFlow
        command.set_defaults(offline=True)
    for register in _GROUPS:
        register(sub, add_connection_flags)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = settings_from(args)
    except SettingsError as exc:
        print(f"prodcat: {exc}", file=sys.stderr)
        return 2
    setup_logging(settings.log_level, settings.log_json)
    quiet_libraries(settings.log_level)
    for warning in unknown_variables(setting_variables()):
        log.warning("%s", warning)
    handler: Handler = args.handler
    native = NativeNoiseFilter()
    if getattr(args, "offline", False) and not is_debug(settings.log_level):
        native.start()
    try:
        return handler(args, settings)
    except ProdcatError as exc:
        log.error("%s", exc)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        native.stop()


if __name__ == "__main__":
    raise SystemExit(main())
