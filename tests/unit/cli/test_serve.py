"""prodcat classify from the command line, without services."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest


def test_classify_without_bundle_fails_cleanly(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from workers.cli.main import main

    monkeypatch.delenv("PRODCAT_MODEL_BUNDLE", raising=False)
    monkeypatch.setenv("PRODCAT_MODEL_STORE", str(tmp_path / "no-store"))  # nothing to serve
    previous = signal.getsignal(signal.SIGTERM)
    assert main(["classify", "--metrics-port", "0"]) == 1
    assert "no model bundle" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGTERM) == previous  # handlers restored
