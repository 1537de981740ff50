"""The hand-checked alignment sample (``tests/data/taxonomy_alignment_gold.jsonl``).

One JSON object per line, one source leaf category of a shared catalog each::

    {"catalog": "bigbasket", "split": "tune",
     "category_path": "Baby Care > Feeding & Nursing > Sippers & Bottles",
     "shopify": {"id": "gid://shopify/TaxonomyCategory/bt-10-3",
                 "path": "Baby & Toddler > Nursing & Feeding > Baby Bottles"},
     "accepted": [{"id": ..., "path": ...}],
     "fit": "node", "reason": "mostly glass and plastic feeding bottles; ..."}

``shopify`` is the node that covers most of the category's products, chosen by
reading a sample of them; ``accepted`` lists nodes judged equally right. ``fit``
is ``node`` (a Shopify node describes the category), ``nearest_ancestor`` (none
does; the nearest one that covers it is recorded) or ``mixed`` (the category
mixes product types; the node covering most of them is recorded). ``split``
says whether the row was used to tune the aligner (``tune``) or only to report
(``held``). The file holds category paths, ids and decisions only, no products.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from export.errors import DataError
from export.standard.trees import SEPARATOR, StandardTree

FITS = ("node", "nearest_ancestor", "mixed")
SPLITS = ("tune", "held")


@dataclass(frozen=True, slots=True)
class GoldRow:
    catalog: str
    split: str
    category_path: tuple[str, ...]
    shopify_id: str
    shopify_path: tuple[str, ...]
    accepted: tuple[tuple[str, tuple[str, ...]], ...]
    fit: str
    reason: str

    @property
    def answers(self) -> list[tuple[str, ...]]:
        """The gold path, then the accepted ones."""
        return [self.shopify_path, *(path for _, path in self.accepted)]


def _node(raw: object, where: Path, line: int) -> tuple[str, tuple[str, ...]]:
    if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
        raise DataError(where, "a node must be {'id': ..., 'path': ...}", line=line)
    return raw["id"], tuple(str(raw.get("path", "")).split(SEPARATOR))


def load_gold(path: Path) -> list[GoldRow]:
    """Read the sample; raises :class:`DataError` naming the line of a malformed row."""
    rows: list[GoldRow] = []
    with Path(path).open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                raw = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(path, f"malformed JSON: {exc.msg}", line=line_no) from exc
            if raw.get("fit") not in FITS or raw.get("split") not in SPLITS:
                raise DataError(
                    path, f"fit must be one of {FITS}, split one of {SPLITS}", line=line_no
                )
            gold_id, gold_path = _node(raw.get("shopify"), path, line_no)
            accepted = tuple(_node(a, path, line_no) for a in raw.get("accepted", []))
            rows.append(
                GoldRow(
                    catalog=str(raw["catalog"]),
                    split=raw["split"],
                    category_path=tuple(str(raw["category_path"]).split(SEPARATOR)),
                    shopify_id=gold_id,
                    shopify_path=gold_path,
                    accepted=accepted,
                    fit=raw["fit"],
                    reason=str(raw.get("reason", "")),
                )
            )
    return rows


def check_against(rows: Sequence[GoldRow], tree: StandardTree) -> list[str]:
    """Problems of the sample against the standard tree: unknown ids, or a recorded
    path that is not the id's path (the tree changed since the sample was made)."""
    problems: list[str] = []
    for row in rows:
        for node_id, node_path in ((row.shopify_id, row.shopify_path), *row.accepted):
            try:
                index = tree.node(node_id)
            except KeyError:
                problems.append(f"{row.catalog} {' > '.join(row.category_path)}: unknown {node_id}")
                continue
            if tree.paths["en"][index] != node_path:
                problems.append(
                    f"{row.catalog} {' > '.join(row.category_path)}: {node_id} is now "
                    f"{tree.path(index)!r}, the sample says {' > '.join(node_path)!r}"
                )
    return problems
