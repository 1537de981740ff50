"""Fixtures shared by the unit tests of several packages."""

from __future__ import annotations

from pathlib import Path

import pytest

from export.data.datasets import load_dataset

N_PRODUCTS = 10_000


@pytest.fixture(scope="session")
def products(data_dir: Path) -> list[tuple[str, str]]:
    """(product_id, title) of 10,000 real bigbasket products."""
    rows, _ = load_dataset("bigbasket", data_dir, limit=N_PRODUCTS)
    return [(r.product_id, r.title) for r in rows]
