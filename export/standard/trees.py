"""The standard category trees, read from the files their owners publish.

* Shopify Standard Product Taxonomy: ``categories.en.txt`` and
  ``categories.zh-CN.txt`` (``gid://shopify/TaxonomyCategory/<id> : A > B > C``, a
  ``# Shopify Product Taxonomy - Categories: <version>`` header);
* Shopify's published mapping to Google product categories,
  ``shopify_<version>_to_google_<version>.txt`` (``→ shopify path`` then
  ``⇒ google path``);
* the Google Product Taxonomy with ids, ``taxonomy-with-ids.en-US.txt``
  (``<id> - A > B > C``).

The folder layout is the one of ``../shared/data/taxonomies``: ``shopify/`` and
``google/`` side by side. Nothing here is copied into the repository; the files
are read from the data folder (``PRODCAT_DATA_DIR``) or a folder given on the
command line.

Every node of a :class:`StandardTree` has an index; ``parent`` and ``depth``
are arrays over those indices, and ``chain`` is the padded matrix of each
node's ancestors (root first, itself last) that hierarchical scores compare.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from export.data.catalog import require_file
from export.errors import DataError

SEPARATOR = " > "
SHOPIFY_GID = "gid://shopify/TaxonomyCategory/"
SHOPIFY_FILES = {"en": "categories.en.txt", "zh": "categories.zh-CN.txt"}
GOOGLE_FILE = "taxonomy-with-ids.en-US.txt"

_SHOPIFY_LINE = re.compile(r"^(gid://shopify/TaxonomyCategory/\S+)\s*:\s*(\S.*)$")
_SHOPIFY_VERSION = re.compile(r"^#.*Categories:\s*(\S+)")
_GOOGLE_LINE = re.compile(r"^(\d+)\s+-\s+(\S.*)$")
_GOOGLE_VERSION = re.compile(r"^#.*Version:\s*(\S+)")

IntArray = npt.NDArray[np.int32]


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text.strip())


def split_levels(text: str) -> tuple[str, ...]:
    """``"A > B > C"`` -> ``("A", "B", "C")`` (names may contain ``>``-free ``/``)."""
    return tuple(_nfc(level) for level in text.split(SEPARATOR))


@dataclass(frozen=True, slots=True)
class StandardTree:
    """One standard taxonomy: ids, paths (per language) and the tree structure.

    ``paths[lang][i]`` is node ``i``'s path in that language (root first); a node
    missing from a language file keeps its English path there. ``parent[i]`` is
    -1 for roots.
    """

    name: str
    version: str
    ids: tuple[str, ...]
    paths: Mapping[str, tuple[tuple[str, ...], ...]]
    parent: IntArray
    depth: IntArray
    chain: IntArray
    index: Mapping[str, int] = field(repr=False)

    def __len__(self) -> int:
        return len(self.ids)

    def path(self, i: int, lang: str = "en") -> str:
        return SEPARATOR.join(self.paths.get(lang, self.paths["en"])[i])

    def ancestors(self, i: int) -> list[int]:
        """Node ``i`` and its ancestors, root first."""
        return [int(a) for a in self.chain[i] if a >= 0]

    def node(self, key: str) -> int:
        """The index of an id (full gid or its short form), else ``KeyError``."""
        short = key.removeprefix(SHOPIFY_GID) if self.name == "shopify" else key
        return self.index[short]

    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(self.paths)


def build_tree(
    name: str, version: str, ids: Sequence[str], paths: Mapping[str, Sequence[tuple[str, ...]]]
) -> StandardTree:
    """A :class:`StandardTree` from ids and their English (and other) paths.

    Parents come from the English paths: a node's parent is the node whose path is
    its path minus the last level. Raises ``ValueError`` on a duplicate id or path,
    or a node whose parent path is not a node.
    """
    english = [tuple(p) for p in paths["en"]]
    by_path: dict[tuple[str, ...], int] = {}
    for i, p in enumerate(english):
        if p in by_path:
            raise ValueError(f"{name}: path {SEPARATOR.join(p)!r} appears twice")
        by_path[p] = i
    index = {key: i for i, key in enumerate(ids)}
    if len(index) != len(ids):
        raise ValueError(f"{name}: duplicate category ids")
    parent = np.full(len(ids), -1, dtype=np.int32)
    for i, p in enumerate(english):
        if len(p) > 1:
            up = by_path.get(p[:-1])
            if up is None:
                raise ValueError(f"{name}: parent of {SEPARATOR.join(p)!r} is not a category")
            parent[i] = up
    depth = np.asarray([len(p) for p in english], dtype=np.int32)
    chain = np.full((len(ids), int(depth.max())), -1, dtype=np.int32)
    for i in range(len(ids)):
        node, d = i, int(depth[i])
        while node >= 0:
            d -= 1
            chain[i, d] = node
            node = int(parent[node])
    frozen = {lang: tuple(tuple(p) for p in lang_paths) for lang, lang_paths in paths.items()}
    return StandardTree(name, version, tuple(ids), frozen, parent, depth, chain, index)


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    with require_file(path).open(encoding="utf-8-sig") as handle:
        for number, raw in enumerate(handle, start=1):
            line = raw.strip()
            if line:
                yield number, line


def _read_shopify_file(path: Path) -> tuple[str, dict[str, tuple[str, ...]]]:
    version = ""
    out: dict[str, tuple[str, ...]] = {}
    for number, line in _lines(path):
        if line.startswith("#"):
            found = _SHOPIFY_VERSION.match(line)
            version = found.group(1) if found and not version else version
            continue
        match = _SHOPIFY_LINE.match(line)
        if match is None:
            raise DataError(
                path, "expected 'gid://shopify/TaxonomyCategory/<id> : A > B'", line=number
            )
        out[match.group(1).removeprefix(SHOPIFY_GID)] = split_levels(match.group(2))
    if not out:
        raise DataError(path, "no categories")
    return version, out


def load_shopify(folder: Path) -> StandardTree:
    """The Shopify taxonomy in ``folder`` (English, plus Chinese when the file is there).

    Ids are kept in their short form (``aa-1-13``); :data:`SHOPIFY_GID` + id is the
    published gid.
    """
    version, english = _read_shopify_file(Path(folder) / SHOPIFY_FILES["en"])
    ids = list(english)
    paths: dict[str, list[tuple[str, ...]]] = {"en": [english[i] for i in ids]}
    zh_file = Path(folder) / SHOPIFY_FILES["zh"]
    if zh_file.is_file():
        _, chinese = _read_shopify_file(zh_file)
        paths["zh"] = [_zh_path(i, english, chinese) for i in ids]
    try:
        return build_tree("shopify", version or "unknown", ids, paths)
    except ValueError as exc:
        raise DataError(Path(folder) / SHOPIFY_FILES["en"], str(exc)) from exc


def _zh_path(
    key: str, english: Mapping[str, tuple[str, ...]], chinese: Mapping[str, tuple[str, ...]]
) -> tuple[str, ...]:
    """The Chinese path of ``key``; a node missing from the Chinese file gets its Chinese
    parent path plus its English name."""
    if key in chinese:
        return chinese[key]
    parent_key = key.rsplit("-", 1)[0] if "-" in key else ""
    head = _zh_path(parent_key, english, chinese) if parent_key in english else ()
    return (*head, english[key][-1])


def load_google(folder: Path) -> StandardTree:
    """The Google Product Taxonomy with ids in ``folder``."""
    path = Path(folder) / GOOGLE_FILE
    version = ""
    ids: list[str] = []
    levels: list[tuple[str, ...]] = []
    for number, line in _lines(path):
        if line.startswith("#"):
            found = _GOOGLE_VERSION.match(line)
            version = found.group(1) if found and not version else version
            continue
        match = _GOOGLE_LINE.match(line)
        if match is None:
            raise DataError(path, "expected '<id> - A > B > C'", line=number)
        ids.append(match.group(1))
        levels.append(split_levels(match.group(2)))
    if not ids:
        raise DataError(path, "no categories")
    try:
        return build_tree("google", version or "unknown", ids, {"en": levels})
    except ValueError as exc:
        raise DataError(path, str(exc)) from exc


def load_google_mapping(folder: Path, shopify: StandardTree, google: StandardTree) -> IntArray:
    """For every Shopify node, the index of its Google category (-1: none).

    Reads the one ``shopify_*_to_google_*.txt`` file in ``folder``. A Shopify node the
    file does not list takes the Google category of its nearest listed ancestor, as
    Shopify's own mapping rules do for new categories. Google paths are compared in
    Unicode NFC (the files disagree on the form of accented names).
    """
    files = sorted(Path(folder).glob("shopify_*_to_google_*.txt"))
    if len(files) != 1:
        raise DataError(folder, "expected exactly one shopify_*_to_google_*.txt mapping file")
    google_index = {google.paths["en"][i]: i for i in range(len(google))}
    shopify_index = {shopify.paths["en"][i]: i for i in range(len(shopify))}
    direct = np.full(len(shopify), -1, dtype=np.int32)
    source: tuple[str, ...] | None = None
    for number, line in _lines(files[0]):
        if line.startswith("→"):
            source = split_levels(line[1:])
        elif line.startswith("⇒"):
            target = split_levels(line[1:])
            if source is None:
                raise DataError(files[0], "'⇒' line without a '→' line before it", line=number)
            node, mapped = shopify_index.get(source), google_index.get(target)
            if node is not None and mapped is not None:
                direct[node] = mapped
            source = None
    out = direct.copy()
    for i in range(len(shopify)):
        if out[i] < 0:
            for ancestor in reversed(shopify.ancestors(i)):
                if direct[ancestor] >= 0:
                    out[i] = direct[ancestor]
                    break
    return out
