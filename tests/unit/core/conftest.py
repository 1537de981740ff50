"""Fixtures of the core tests."""

from __future__ import annotations

import pytest

from workers.core.codec import Codec


@pytest.fixture
def codec() -> Codec:
    return Codec()
