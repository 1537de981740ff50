"""workers.core.overrides: Redis key formats and the override value."""

from __future__ import annotations

import json

import pytest

from workers.core.categories import category_id
from workers.core.overrides import Override, decode_override, override_key, result_key


def test_key_formats() -> None:
    assert override_key("prodcat", "P-1") == "prodcat:override:P-1"
    assert result_key("prodcat", "v1.2", "ab" * 32) == f"prodcat:result:v1.2:{'ab' * 32}"
    # the version is part of the key: a new model never reads an old model's answers
    assert result_key("p", "a", "h") != result_key("p", "b", "h")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            json.dumps({"category_path": ["A", "B"], "category_id": "x1", "source": "moderator"}),
            Override("x1", ("A", "B"), "moderator"),
        ),
        (json.dumps({"category_path": "A > B"}), Override(category_id(("A", "B")), ("A", "B"))),
        (json.dumps({"category_path": []}), None),
        (json.dumps({"category_id": "x"}), None),
        ("not json", None),
    ],
)
def test_decode_override(raw: str, expected: Override | None) -> None:
    assert decode_override(raw.encode()) == expected


def test_decode_override_non_utf8() -> None:
    assert decode_override(b"\xff\xfe") is None
