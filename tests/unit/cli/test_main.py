"""The ``prodcat`` parser: --version, flags per command, defaults in --help, messages."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import pytest

from workers.cli.main import build_parser, installed_version, main

CONNECTION_FLAGS = ("--bootstrap", "--redis-url", "--data-dir")


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _commands(
    parser: argparse.ArgumentParser, prefix: str = ""
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """(name, parser) of every command and nested command, e.g. ``models list``."""
    for name, sub in _subparsers(parser).items():
        full = f"{prefix} {name}".strip()
        yield full, sub
        yield from _commands(sub, full)


def _flags(parser: argparse.ArgumentParser) -> set[str]:
    return {flag for action in parser._actions for flag in action.option_strings}


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out.strip()
    assert out == f"prodcat {installed_version()}"
    assert out.split()[1][0].isdigit()  # the installed distribution's version


def test_train_bundle_version_and_its_old_spelling() -> None:
    parser = build_parser()
    new = parser.parse_args(["train", "--data", "bigbasket", "--bundle-version", "v7"])
    old = parser.parse_args(["train", "--data", "bigbasket", "--version", "v7"])
    assert new.version == old.version == "v7"


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("classify", {"--bootstrap", "--redis-url"}),
        ("feedback", {"--bootstrap", "--redis-url"}),
        ("demo", {"--bootstrap", "--redis-url", "--data-dir"}),
        ("labels dump", {"--bootstrap"}),
        ("publish", {"--bootstrap"}),
        ("models list", {"--bootstrap"}),
        ("models promote", {"--bootstrap"}),
        ("train", {"--data-dir"}),
        ("heldout", {"--data-dir"}),
        ("predict", set()),
        ("export", set()),
    ],
)
def test_connection_flags_only_where_the_command_connects(command: str, expected: set[str]) -> None:
    sub = dict(_commands(build_parser()))[command]
    flags = _flags(sub)
    assert flags & set(CONNECTION_FLAGS) == expected
    assert {"--log-level", "--log-json"} <= flags  # every command logs


def test_an_offline_command_refuses_a_connection_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["predict", "x.csv", "--bootstrap", "kafka:9092"])
    assert exit_.value.code == 2
    assert "unrecognized arguments: --bootstrap" in capsys.readouterr().err


def test_help_shows_defaults_and_never_none() -> None:
    parser = build_parser()
    commands = dict(_commands(parser))
    assert {"classify", "demo", "models list", "labels dump", "train"} <= set(commands)
    for name, sub in commands.items():
        text = sub.format_help()
        assert "default: None" not in text, name
        assert "default: False" not in text, name
    demo = " ".join(commands["demo"].format_help().split())
    assert "(default: 200.0)" in demo  # --rate
    assert "(default: bigbasket,cn_ecommerce_products)" in demo  # --datasets
    classify = " ".join(commands["classify"].format_help().split())
    assert "(PRODCAT_KAFKA_BOOTSTRAP; default: 127.0.0.1:9092)" in classify
    assert "(PRODCAT_REDIS_URL; default: redis://127.0.0.1:6379/0)" in classify
    train = " ".join(commands["train"].format_help().split())
    assert "(default: var/bundles)" in train  # --out
    assert "(PRODCAT_DATA_DIR; default: ../shared/data)" in train


def test_a_file_given_as_bundle_says_what_a_bundle_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    products = tmp_path / "products.csv"
    products.write_text("title\nGreen Tea 100 g\n", encoding="utf-8")
    assert main(["predict", str(products), "--bundle", str(products)]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "products.csv: is a file, not a model bundle" in err
    assert "prodcat train --data CATALOG --out var/bundles" in err
    assert main(["predict", str(products), "--bundle", str(tmp_path / "nothere")]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "no such bundle directory" in err and "model.onnx, metadata.json" in err


def test_models_list_with_nothing_published_says_what_to_do(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The message only; tests/integration/test_cli.py runs it on an empty control topic."""

    class NoVersions:
        def __init__(self, *args: object, **kwargs: object) -> None:
            pass

        def rows(self) -> list[dict[str, object]]:
            return []

    monkeypatch.setattr("workers.lifecycle.admin.ModelAdmin", NoVersions)
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert "no model version is published" in out
    assert "prodcat publish var/bundles/<version> --live" in out
    assert main(["models", "list", "--json"]) == 0
    assert capsys.readouterr().out == ""  # JSON lines: none
