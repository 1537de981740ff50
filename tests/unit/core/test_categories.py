"""workers.core.categories: the one category-path parser, its display form and stable ids."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workers.core.categories import (
    CategoryPathError,
    category_id,
    format_path,
    parse_category_path,
)


def test_a_string_path_is_split_on_the_separator_and_stripped() -> None:
    assert parse_category_path(" A >B > C ") == ("A", "B", "C")
    assert parse_category_path("Beverages > Tea >  Green Tea ") == ("Beverages", "Tea", "Green Tea")


def test_a_list_path_keeps_its_levels_stripped() -> None:
    assert parse_category_path([" Sports", "Shoes "]) == ("Sports", "Shoes")
    assert parse_category_path(("A > B", "C")) == ("A > B", "C")  # a list level is one name


@pytest.mark.parametrize("value", [None, "", "   ", [], [" "]])
def test_a_missing_or_empty_path_is_an_error(value: object) -> None:
    with pytest.raises(CategoryPathError, match=r"missing|empty"):
        parse_category_path(value)


@pytest.mark.parametrize("value", ["A > > C", " > ", "A >", ["A", "", "C"], ["A", None]])
def test_an_empty_level_is_an_error_never_a_shorter_path(value: object) -> None:
    """Formerly the taxonomy and the gate dropped the empty level ("A > > C" was
    ("A", "C"), another class) while training skipped the row: now every reader refuses."""
    with pytest.raises(CategoryPathError, match="empty"):
        parse_category_path(value)


@pytest.mark.parametrize("value", [3, {"a": "b"}, 1.5])
def test_a_path_of_another_type_is_a_type_error(value: object) -> None:
    with pytest.raises(TypeError, match="string 'A > B > C' or a list"):
        parse_category_path(value)


def test_format_path_is_the_inverse_of_parse() -> None:
    assert format_path(("A", "B")) == "A > B"
    assert parse_category_path(format_path(("Grocery", "Atta & Flours"))) == (
        "Grocery",
        "Atta & Flours",
    )


def test_category_id_is_stable_and_distinct() -> None:
    path = ("Beverages", "Tea", "Green Tea")
    # part of the event contract: the same path has this id in every model and release
    assert category_id(path) == category_id(list(path)) == "80723273444b748a"
    assert category_id(("a", "b")) != category_id(("a b",))


_LEVEL = st.text(
    alphabet=st.characters(
        exclude_characters=">", exclude_categories=("Cs", "Cc", "Zs", "Zl", "Zp")
    ),
    min_size=1,
    max_size=8,
)


@given(st.lists(_LEVEL, min_size=1, max_size=5))
def test_parse_round_trips(levels: list[str]) -> None:
    assert parse_category_path(" > ".join(levels)) == tuple(level.strip() for level in levels)
