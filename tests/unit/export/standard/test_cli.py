"""``prodcat taxonomy`` reaches the command line through the ``prodcat.commands`` entry
point, declares its flags without importing the commands, and parses as documented."""

from __future__ import annotations

import argparse
import sys
import tomllib
from pathlib import Path

from export.standard.cli import register
from workers.cli.common import add_connection_flags
from workers.cli.main import COMMAND_GROUP

REPO = Path(__file__).resolve().parents[4]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="prodcat")
    register(p.add_subparsers(dest="command", required=True), add_connection_flags)
    return p


def test_the_entry_point_is_declared() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["entry-points"][COMMAND_GROUP]["standard"] == "export.standard.cli:register"


def test_align_and_apply_parse_as_documented() -> None:
    sys.modules.pop("export.standard.commands", None)
    args = parser().parse_args(
        ["taxonomy", "align", "--bundle", "b", "--to", "shopify", "--out", "m.csv", "--apply"]
    )
    assert (args.bundle, args.to, args.out, args.apply) == (
        Path("b"),
        "shopify",
        Path("m.csv"),
        True,
    )
    assert args.products is None and args.taxonomies is None
    args = parser().parse_args(["taxonomy", "apply", "m.csv", "--bundle", "b", "--out", "b2"])
    assert (args.mapping, args.bundle, args.out) == (Path("m.csv"), Path("b"), Path("b2"))
    assert callable(args.handler)
    assert "export.standard.commands" not in sys.modules  # flags only: commands load on use
