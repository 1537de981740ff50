"""Fixtures shared by every test: where the repo and the labelled data are."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The root of the prodcat checkout."""
    return REPO_ROOT


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The labelled catalogs: PRODCAT_DATA_DIR, by default ``<repo>/../shared/data``.

    A relative PRODCAT_DATA_DIR is taken from the repo root, where the suite is run.
    Tests that need the data are skipped, with a message naming the setting, when
    the folder is missing. The data is never copied into the repo.
    """
    configured = os.environ.get("PRODCAT_DATA_DIR")
    path = Path(configured).expanduser() if configured else REPO_ROOT.parent / "shared" / "data"
    if not path.is_absolute():
        path = REPO_ROOT / path
    if not path.is_dir():
        pytest.skip(
            f"data folder {path} not found: set PRODCAT_DATA_DIR to the folder with the "
            "labelled catalogs (default: ../shared/data next to the repo)"
        )
    return path.resolve()
