"""prodcat publish and prodcat models: the command line parses the lifecycle commands."""

from __future__ import annotations

from pathlib import Path

import pytest


def test_cli_parses_the_lifecycle_commands() -> None:
    from workers.cli.main import build_parser

    parser = build_parser()
    args = parser.parse_args(["publish", "var/bundles/v2", "--live", "--holdout", "h.jsonl"])
    assert (args.bundle_dir, args.live, args.holdout) == (
        Path("var/bundles/v2"),
        True,
        Path("h.jsonl"),
    )
    args = parser.parse_args(["models", "promote", "v2", "--force", "--tolerance", "0.02"])
    assert (args.models_command, args.version, args.force, args.tolerance) == (
        "promote",
        "v2",
        True,
        0.02,
    )
    args = parser.parse_args(["models", "canary", "v3", "--share", "0.1"])
    assert (args.version, args.share, args.off) == ("v3", 0.1, False)
    assert parser.parse_args(["models", "rollback", "--to", "v1"]).to == "v1"
    assert parser.parse_args(["models", "shadow", "--off"]).off
    with pytest.raises(SystemExit):
        parser.parse_args(["models", "retire"])
