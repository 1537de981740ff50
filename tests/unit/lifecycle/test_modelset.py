"""workers.lifecycle.modelset: canary routing by a stable hash of product_id."""

from __future__ import annotations

import pytest

from tests.unit.conftest import N_PRODUCTS
from workers.lifecycle.modelset import canary_point, canary_routes


def test_canary_point_is_pinned() -> None:
    # SHA-256 of the UTF-8 id, first 8 bytes big-endian / 2**64: any language can compute it.
    assert canary_point("sku-42") == pytest.approx(0.0676905806365784, abs=1e-15)
    assert 0.0 <= canary_point("") < 1.0


@pytest.mark.parametrize("share", [0.01, 0.05, 0.2, 0.5])
def test_canary_share_is_close_on_10000_real_products(
    products: list[tuple[str, str]], share: float
) -> None:
    ids = [pid for pid, _ in products]
    assert len(set(ids)) == N_PRODUCTS
    routes = canary_routes(ids, share)
    assert abs(sum(routes) / len(ids) - share) < 0.02
    assert routes == [canary_point(pid) < share for pid in ids]  # the documented rule


def test_raising_the_share_only_moves_products_to_the_canary(
    products: list[tuple[str, str]],
) -> None:
    ids = [pid for pid, _ in products]
    small = {pid for pid, r in zip(ids, canary_routes(ids, 0.05), strict=True) if r}
    large = {pid for pid, r in zip(ids, canary_routes(ids, 0.2), strict=True) if r}
    assert small < large
    assert not any(canary_routes(ids, 0.0)) and all(canary_routes(ids, 1.0))
