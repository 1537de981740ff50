"""workers.cli.retrain: ``prodcat retrain`` runs the retraining script with its flags."""

from __future__ import annotations

import pytest

from workers.cli.main import build_parser
from workers.cli.retrain import SOURCE_SCRIPT, find_script, script_argv


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["retrain", "--spec", "weekly.spec"], ["--spec", "weekly.spec"]),
        (
            ["retrain", "--if-empty", "--live", "bigbasket", "myntra_styles"],
            ["--if-empty", "--live", "bigbasket", "myntra_styles"],
        ),
        (
            ["retrain", "--spec", "s", "--canary", "0.25", "--no-labels", "x.jsonl"],
            ["--spec", "s", "--canary", "0.25", "--no-labels", "x.jsonl"],
        ),
    ],
)
def test_flags_reach_the_script(argv: list[str], expected: list[str]) -> None:
    assert script_argv(build_parser().parse_args(argv)) == expected


def test_live_and_canary_exclude_each_other() -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["retrain", "--live", "--canary", "0.1", "bigbasket"])


def test_a_source_checkout_runs_its_own_script() -> None:
    assert find_script() == SOURCE_SCRIPT and SOURCE_SCRIPT.name == "retrain.sh"
