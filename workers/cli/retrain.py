"""``prodcat retrain``: the retraining job (labels, train, publish, offline gate, canary).

The job is a short sequence of ``prodcat`` commands, ``deploy/docker/retrain.sh``, the
same script the container image installs as ``prodcat-retrain`` for the Kubernetes CronJob
and the compose ``retrain`` service. This command runs it from a source checkout (or the
image's copy), so it is one job wherever it runs; its flags and the spec file are the
script's. Connection settings come from the environment (``PRODCAT_*``), as for every
command the script runs.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
from pathlib import Path

from workers.cli.common import ConnectionFlags, Subparsers
from workers.core.errors import ConfigError
from workers.core.settings import Settings

__all__ = ["register", "script_argv"]

SOURCE_SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "docker" / "retrain.sh"
IMAGE_SCRIPT = "prodcat-retrain"


def find_script() -> Path:
    """The retrain script: the source checkout's, else the image's ``prodcat-retrain``."""
    if SOURCE_SCRIPT.is_file():
        return SOURCE_SCRIPT
    installed = shutil.which(IMAGE_SCRIPT)
    if installed is None:
        raise ConfigError(
            f"prodcat retrain runs {SOURCE_SCRIPT.relative_to(SOURCE_SCRIPT.parents[2])} from a "
            f"source checkout or {IMAGE_SCRIPT} from the prodcat-train image; neither is here"
        )
    return Path(installed)


def script_argv(args: argparse.Namespace) -> list[str]:
    """The script's arguments for the parsed ``prodcat retrain`` flags."""
    argv: list[str] = []
    if args.spec is not None:
        argv += ["--spec", str(args.spec)]
    if args.if_empty:
        argv.append("--if-empty")
    if args.live:
        argv.append("--live")
    if args.canary is not None:
        argv += ["--canary", f"{args.canary:g}"]
    if args.no_labels:
        argv.append("--no-labels")
    return [*argv, *args.datasets]


def _retrain(args: argparse.Namespace, settings: Settings) -> int:
    del settings  # the script's commands read the same environment
    return subprocess.call(["sh", str(find_script()), *script_argv(args)])


def register(sub: Subparsers, common: ConnectionFlags) -> None:
    p = sub.add_parser(
        "retrain",
        help="the retraining job: labels, train, publish, offline gate, canary (a spec file)",
    )
    common(p)
    p.add_argument(
        "--spec",
        type=Path,
        help="KEY=VALUE retrain spec (deploy/docker/retrain.spec documents every key)",
    )
    p.add_argument(
        "--if-empty", action="store_true", help="do nothing when the store holds a bundle"
    )
    rollout = p.add_mutually_exclusive_group()
    rollout.add_argument("--live", action="store_true", help="make it live (gated)")
    rollout.add_argument(
        "--canary",
        type=float,
        metavar="SHARE",
        help="after the offline gate, serve this share (0..1) of the products with it",
    )
    p.add_argument("--no-labels", action="store_true", help="train on the catalogs only")
    p.add_argument("datasets", nargs="*", help="catalogs (win over the spec's DATA)")
    p.set_defaults(handler=_retrain)
