"""The reviewable mapping CSV that ``prodcat taxonomy align`` writes and ``apply`` reads.

One row per source category (inner categories too), in tree order. The first columns
are fixed, in this order::

    category_path  shopify_id  shopify_path  score

(the bundle's path joined with " > ", the ``gid://shopify/TaxonomyCategory/...`` id or
empty for no match, its path, the aligner's score), then the top-3 alternatives
(``alt1_id``, ``alt1_path``, ``alt1_score``, ... ``alt3_score``) and, for the reviewer:
``status`` (``ok``, ``low`` = check it, ``none`` = no match given), the Google category
the Shopify one maps to, how many products the category had, the name and title evidence,
the share of the evidence the answer covers, ``auto_id`` (the aligner's own answer, so an
edit can be told from it) and ``reviewed``.

A reviewer edits ``shopify_id`` (or only ``shopify_path``, or empties both for "no
standard category") and may put ``yes`` in ``reviewed`` to confirm a row as it is.
:func:`read_sheet` reads the edits back: a row whose ``shopify_id`` differs from
``auto_id``, or marked reviewed, is a reviewed row, and its answer wins.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

from export.errors import DataError
from export.standard.align import Alignment, Candidate
from export.standard.trees import SEPARATOR, SHOPIFY_GID, StandardTree

FIRST_COLUMNS = ("category_path", "shopify_id", "shopify_path", "score")
ALTERNATIVES = 3
REVIEW_COLUMNS = (
    "status",
    "google_id",
    "google_path",
    "products",
    "name_score",
    "title_score",
    "coverage",
    "auto_id",
    "reviewed",
)
COLUMNS = (
    *FIRST_COLUMNS,
    *(f"alt{i}_{part}" for i in range(1, ALTERNATIVES + 1) for part in ("id", "path", "score")),
    *REVIEW_COLUMNS,
)
YES = frozenset({"yes", "y", "true", "1", "x", "ok", "reviewed"})


Status = Literal["ok", "low", "none"]
STATUSES: tuple[Status, ...] = ("ok", "low", "none")


@dataclass(frozen=True, slots=True)
class SheetRow:
    """One row as read back: the answer (``node`` None: no standard category), the
    automatic status and score, and whether a person reviewed it."""

    line: int
    category_path: tuple[str, ...]
    node: int | None
    status: Status
    score: float
    reviewed: bool


def gid(tree: StandardTree, node: int) -> str:
    return SHOPIFY_GID + tree.ids[node]


def write_sheet(
    out: IO[str],
    alignments: Sequence[Alignment],
    tree: StandardTree,
    google: StandardTree | None = None,
    to_google: Sequence[int] | None = None,
) -> None:
    """The CSV of ``alignments`` (parents before children, as :meth:`Aligner.align` gives
    them). An unmatched category gets empty id and path; its best guess is alternative 1."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for a in alignments:
        matched = a.matched
        alternatives = (
            list(a.alternatives) if matched else [Candidate(a.node, a.score), *a.alternatives]
        )
        row: list[object] = [
            SEPARATOR.join(a.path),
            gid(tree, a.node) if matched else "",
            tree.path(a.node) if matched else "",
            f"{a.score:.3f}",
        ]
        for i in range(ALTERNATIVES):
            if i < len(alternatives):
                alt = alternatives[i]
                row += [gid(tree, alt.node), tree.path(alt.node), f"{alt.score:.3f}"]
            else:
                row += ["", "", ""]
        mapped = -1 if to_google is None or not matched else int(to_google[a.node])
        row += [
            a.status,
            google.ids[mapped] if google is not None and mapped >= 0 else "",
            google.path(mapped) if google is not None and mapped >= 0 else "",
            a.products,
            f"{a.name_score:.3f}",
            f"{a.title_score:.3f}",
            f"{a.coverage:.3f}",
            gid(tree, a.node) if matched else "",
            "",
        ]
        writer.writerow(row)


def _node(tree: StandardTree, path: Path, line: int, raw_id: str, raw_path: str) -> int | None:
    """The node a row names by id and/or path; None when both are empty."""
    raw_id, raw_path = raw_id.strip(), raw_path.strip()
    by_id = by_path = None
    if raw_id:
        try:
            by_id = tree.node(raw_id)
        except KeyError:
            raise DataError(
                path,
                f"shopify_id {raw_id!r} is not a category of Shopify taxonomy {tree.version}; "
                "use a gid://shopify/TaxonomyCategory/... id from categories.en.txt, or empty "
                "it for no standard category",
                line=line,
            ) from None
    if raw_path:
        levels = tuple(level.strip() for level in raw_path.split(">"))
        matches = [i for i, p in enumerate(tree.paths["en"]) if p == levels]
        if not matches:
            if by_id is None:
                raise DataError(
                    path,
                    f"shopify_path {raw_path!r} is not a path of Shopify taxonomy "
                    f"{tree.version}; copy it from categories.en.txt or give shopify_id",
                    line=line,
                )
        else:
            by_path = matches[0]
    if by_id is not None and by_path is not None and by_id != by_path:
        raise DataError(
            path,
            f"shopify_id {raw_id} is {tree.path(by_id)!r} but shopify_path says {raw_path!r}; "
            "edit both, or empty shopify_path to keep the id",
            line=line,
        )
    return by_id if by_id is not None else by_path


def read_sheet(path: Path, tree: StandardTree) -> list[SheetRow]:
    """Read a (reviewed) mapping CSV. Raises :class:`DataError` naming the line and the
    column of anything it cannot use."""
    rows: list[SheetRow] = []
    seen: dict[tuple[str, ...], int] = {}
    with Path(path).open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in ("category_path", "shopify_id") if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(
                path,
                f"column(s) {', '.join(missing)} missing; expected the columns prodcat "
                "taxonomy align writes: " + ", ".join(FIRST_COLUMNS),
                line=1,
            )
        for record in reader:
            line = reader.line_num
            category = tuple(
                level.strip() for level in (record.get("category_path") or "").split(SEPARATOR)
            )
            if not all(category):
                raise DataError(path, "category_path is empty or has an empty level", line=line)
            if category in seen:
                raise DataError(
                    path,
                    f"category {' > '.join(category)!r} appears twice (also line {seen[category]})",
                    line=line,
                )
            seen[category] = line
            node = _node(
                tree, path, line, record.get("shopify_id") or "", record.get("shopify_path") or ""
            )
            auto = (record.get("auto_id") or "").strip()
            auto_node = tree.node(auto) if auto and _known(tree, auto) else None
            reviewed = (record.get("reviewed") or "").strip().lower() in YES or node != auto_node
            text = (record.get("status") or "").strip() or ("ok" if node is not None else "none")
            status = next((s for s in STATUSES if s == text), None)
            if status is None:
                raise DataError(path, f"status {text!r} is not ok, low or none", line=line)
            try:
                score = float(record.get("score") or 0.0)
            except ValueError:
                raise DataError(
                    path, f"score {record.get('score')!r} is not a number", line=line
                ) from None
            rows.append(SheetRow(line, category, node, status, score, reviewed))
    if not rows:
        raise DataError(path, "no rows: the mapping file maps no category")
    return rows


def _known(tree: StandardTree, key: str) -> bool:
    try:
        tree.node(key)
    except KeyError:
        return False
    return True
