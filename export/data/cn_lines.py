"""Line parser for ``cn_ecommerce_products/products.csv`` (no header, no quoting).

Each line is ``id,L1|L2|L3,title,breadcrumb,site,seller``, but titles,
breadcrumbs and sellers contain commas, so a plain split is wrong on ~1 % of
lines, and some lines are damaged. The rules, in order:

* blank lines are ignored (not counted as rows);
* ``id label`` separated by a space instead of a comma is repaired;
* the label comes from ``allcategories.csv`` by category id (the canonical
  name: the row's own text drifts, e.g. ``男装 |衬衫`` or ``大衣`` for
  ``大衣、风衣``); the row's label must agree with it on the first two levels
  and on the leaf as a set of ``、``-separated names, one containing the other.
  Anything else is a damaged line (a title fused into the label, a shifted row);
* the breadcrumb is found by its shape (``A > B > C``, ``A > B`` with spaces,
  or Amazon's ``x/类别/y``), never by position alone:
  - normal layout: the title is every field before the first breadcrumb-like
    field (the title may contain commas), and must not be breadcrumb-like;
  - swapped layout (most book sites: breadcrumb first, then title): the
    breadcrumb's first level must be short (a root such as ``图书`` or
    ``首页``, after any Amazon promotion text ending in ``(促销说明)``); the
    title is what lies between the breadcrumb and the last two fields
    (site, seller). A long first level means the title and the
    breadcrumb were fused by an encoding error: such lines are dropped;
  - no breadcrumb-like field: exactly six fields are required, and the title
    is the third (the breadcrumb there is a truncated copy of the title).

The breadcrumb, site and seller are never returned: the breadcrumb holds the
site's own category path and would leak the label.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from dataclasses import dataclass

_TAG = re.compile(r"<[^<>]*>")
_ID_SPACE_LABEL = re.compile(r"^(\d{6,})\s+(\S.*)$")
_MAX_ROOT_CHARS = 12
_PROMOTION = re.compile(r"^.*\(促销说明\)")


@dataclass(frozen=True, slots=True)
class CnLine:
    """A parsed line: ``path`` is canonical, ``title`` never holds breadcrumb text."""

    category_id: str
    path: tuple[str, ...]
    title: str
    repairs: tuple[str, ...]


class CnLineError(ValueError):
    """A line that cannot be used; the message is the skip reason."""


def load_category_names(text: str) -> dict[str, tuple[str, ...]]:
    """``allcategories.csv`` (``id,L1|L2|L3``) as id -> path."""
    names: dict[str, tuple[str, ...]] = {}
    for line in text.splitlines():
        category_id, sep, label = line.partition(",")
        if sep and category_id.strip().isdigit():
            levels = tuple(level.strip() for level in label.split("|"))
            if len(levels) == 3 and all(levels):
                names[category_id.strip()] = levels
    return names


def is_breadcrumb(field: str) -> bool:
    """Whether a field looks like a site category path rather than a product title."""
    text = _TAG.sub("", html.unescape(field))
    if "/类别/" in text:
        return True
    return text.count(">") >= 2 or " > " in text


def _leaf_names(leaf: str) -> set[str]:
    return {name.strip() for name in leaf.split("、") if name.strip()}


def _label_agrees(row_label: str, canonical: tuple[str, ...]) -> bool:
    levels = [level.strip() for level in row_label.split("|")]
    if len(levels) != 3 or levels[:2] != list(canonical[:2]):
        return False
    row_leaf, leaf = _leaf_names(levels[2]), _leaf_names(canonical[2])
    return bool(row_leaf) and (row_leaf <= leaf or leaf <= row_leaf)


def _crumb_span(fields: list[str], start: int) -> int:
    """Index just past the breadcrumb that starts at ``start`` (it may hold commas)."""
    end = start + 1
    while end < len(fields) and is_breadcrumb(fields[end]):
        end += 1
    return end


def _title_from_fields(fields: list[str]) -> tuple[str, tuple[str, ...]]:
    crumbs = [i for i, f in enumerate(fields) if is_breadcrumb(f)]
    if not crumbs:
        if len(fields) != 4:
            raise CnLineError("no breadcrumb and not six fields: title not separable")
        return fields[0], ()
    first = crumbs[0]
    if first > 0:
        return ",".join(fields[:first]), ()
    root = _PROMOTION.sub("", _TAG.sub("", fields[0])).split(">", 1)[0].strip()
    if len(root) > _MAX_ROOT_CHARS:
        raise CnLineError("title fused with breadcrumb (encoding damage)")
    after = fields[_crumb_span(fields, 0) :]
    if len(after) < 3:
        raise CnLineError("breadcrumb first and no title after it")
    return ",".join(after[:-2]), ("breadcrumb before title (columns swapped)",)


def parse_line(line: str, names: Mapping[str, tuple[str, ...]]) -> CnLine:
    """Parse one non-blank line; raises :class:`CnLineError` with the skip reason."""
    repairs: list[str] = []
    parts = line.split(",", 2)
    spaced = _ID_SPACE_LABEL.match(parts[0])
    if spaced and "|" in spaced.group(2):
        repairs.append("id and label separated by a space")
        rest = line.split(",", 1)[1] if len(parts) > 1 else ""
        parts = [spaced.group(1), spaced.group(2), rest]
    if len(parts) < 3:
        raise CnLineError("fewer than three fields")
    category_id, row_label, rest = parts[0].strip(), parts[1], parts[2]
    canonical = names.get(category_id)
    if canonical is None:
        raise CnLineError("unknown category id")
    if not _label_agrees(row_label, canonical):
        raise CnLineError("label text disagrees with category id (damaged line)")
    fields = rest.split(",")
    if len(fields) < 3:
        raise CnLineError("fewer than six fields")
    raw_title, more = _title_from_fields(fields)
    repairs.extend(more)
    title = " ".join(html.unescape(raw_title).split())
    if not title:
        raise CnLineError("empty title")
    if is_breadcrumb(title):
        raise CnLineError("title looks like a breadcrumb")
    return CnLine(category_id, canonical, title, tuple(repairs))
