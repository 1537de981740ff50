"""The standard trees, read once per session from the shared data folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from export.standard.trees import StandardTree, load_google, load_google_mapping, load_shopify


@pytest.fixture(scope="session")
def taxonomies(data_dir: Path) -> Path:
    return data_dir / "taxonomies"


@pytest.fixture(scope="session")
def shopify(taxonomies: Path) -> StandardTree:
    return load_shopify(taxonomies / "shopify")


@pytest.fixture(scope="session")
def google(taxonomies: Path) -> StandardTree:
    return load_google(taxonomies / "google")


@pytest.fixture(scope="session")
def to_google(
    taxonomies: Path, shopify: StandardTree, google: StandardTree
) -> npt.NDArray[np.int32]:
    return load_google_mapping(taxonomies / "shopify", shopify, google)
