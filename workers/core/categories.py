"""Category paths: the one parser, the display form and the stable id of a path.

A category path names the categories from the root down, e.g.
``("Grocery", "Staples", "Atta & Flours")``. Products files and override values may write
it as one string, ``"Grocery > Staples > Atta & Flours"``, or as a list of names. Every
reader of a path (training's catalog files and labels, ``prodcat predict``'s and the
promotion gate's products files, the overrides in Redis) goes through
:func:`parse_category_path`, so ``"A >  > C"`` means the same thing everywhere: a path
with an empty level, which is an error, never the two-level path ``("A", "C")``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Final

__all__ = [
    "PATH_SEPARATOR",
    "CategoryPathError",
    "category_id",
    "format_path",
    "parse_category_path",
]

PATH_SEPARATOR: Final = " > "
"""How a path is written as one string (levels are split on ``>`` and stripped)."""


class CategoryPathError(ValueError):
    """A category path is missing or empty, or one of its levels is empty."""


def parse_category_path(value: object) -> tuple[str, ...]:
    """``"A > B > C"`` or ``["A", "B", "C"]`` as ``("A", "B", "C")``, each level stripped.

    Raises :class:`CategoryPathError` when the path is missing (``None``) or empty, or
    when a level is empty (``"A >  > C"``, ``["A", " "]``), and ``TypeError`` when it is
    neither a string nor a list of names. Callers decide what a bad path means for
    their row: training skips and counts it, ``prodcat predict`` and the gate stop with
    a message naming the file, line and field.
    """
    if value is None:
        raise CategoryPathError("the category path is missing")
    if isinstance(value, str):
        levels = tuple(level.strip() for level in value.split(">"))
    elif isinstance(value, list | tuple):
        levels = tuple("" if level is None else str(level).strip() for level in value)
    else:
        raise TypeError(
            f"a category path is a string 'A > B > C' or a list of names, "
            f"not {type(value).__name__}"
        )
    if not levels or levels == ("",):
        raise CategoryPathError("the category path is empty")
    if not all(levels):
        raise CategoryPathError(
            f"the category path {format_path(levels)!r} has an empty level; write every "
            "level from the root down, e.g. 'Grocery > Staples > Atta & Flours'"
        )
    return levels


def format_path(path: Sequence[str]) -> str:
    """``("A", "B")`` as ``"A > B"``."""
    return PATH_SEPARATOR.join(path)


def category_id(path: Sequence[str]) -> str:
    """A short, stable id for a category path (same path, same id, in every model)."""
    digest = hashlib.blake2b("\x1f".join(path).encode("utf-8"), digest_size=8)
    return digest.hexdigest()
