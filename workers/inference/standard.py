"""A bundle's mapping of its categories to a standard taxonomy, ready for serving.

``prodcat taxonomy apply`` writes the reviewed mapping into the bundle as
``standard.json`` (listed in the manifest like every file, summarized in
``metadata.json``'s ``standard``), so the mapping travels with the model: publishing the
bundle publishes it, and a hot swap swaps it.

:class:`StandardTable` turns it into what the hot path needs: for every category the model
can answer (each leaf and each inner node of its taxonomy) the pre-encoded JSON of the
event fields ``standard_category`` and ``google_product_category``, in arrays indexed like
the taxonomy's leaves and nodes. A batch then picks its items' fields with one array
gather (:meth:`StandardTable.fields_of`); nothing is looked up per message.

A category the mapping leaves unmatched (or does not list) gets ``null`` for both fields,
as does every category of a bundle without a mapping: the output never guesses.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Final, Literal

import msgspec
import numpy as np
import numpy.typing as npt

from workers.core.errors import BundleError
from workers.core.events import GoogleCategory, StandardCategory
from workers.inference.taxonomy import Decided, Taxonomy

__all__ = [
    "NULL_FIELDS",
    "STANDARD_FILE",
    "STANDARD_FORMAT",
    "MappedCategory",
    "StandardMapping",
    "StandardTable",
    "decode_standard",
    "encode_standard",
    "read_standard",
]

STANDARD_FILE: Final = "standard.json"
STANDARD_FORMAT: Final = "prodcat-standard/1"
NULL_FIELDS: Final = b'"standard_category":null,"google_product_category":null'
"""The event fields of a category without a standard category."""

Status = Literal["ok", "low", "none"]


class MappedCategory(msgspec.Struct, kw_only=True, frozen=True):
    """One category of the bundle and its standard category.

    ``status`` and ``score`` are the automatic alignment's; ``reviewed`` is true when a
    person checked the row (their answer is ``id``). ``id`` None: no standard category."""

    category_path: Annotated[list[str], msgspec.Meta(min_length=1)]
    id: str | None = None
    path: list[str] | None = None
    google_id: str | None = None
    google_path: list[str] | None = None
    score: float = 0.0
    status: Status = "none"
    reviewed: bool = False

    @property
    def match(self) -> Literal["reviewed", "auto", "low"] | None:
        """The event's ``match``, or None when the category has no standard category."""
        if self.id is None or not self.path:
            return None
        if self.reviewed:
            return "reviewed"
        return "low" if self.status != "ok" else "auto"


class StandardMapping(msgspec.Struct, kw_only=True, frozen=True):
    """``standard.json``: the taxonomy (name and version) and one row per category."""

    format: str
    taxonomy: str
    version: str
    google_version: str | None = None
    categories: list[MappedCategory]

    def by_path(self) -> dict[tuple[str, ...], MappedCategory]:
        return {tuple(c.category_path): c for c in self.categories}

    def fields(
        self, entry: MappedCategory | None
    ) -> tuple[StandardCategory | None, GoogleCategory | None]:
        """The event values of one mapped category (None, None when unmatched)."""
        match = None if entry is None else entry.match
        if entry is None or match is None or entry.id is None or entry.path is None:
            return None, None
        standard = StandardCategory(
            taxonomy=self.taxonomy,
            version=self.version,
            id=entry.id,
            path=list(entry.path),
            match=match,
        )
        google = None
        if entry.google_id and entry.google_path:
            google = GoogleCategory(id=entry.google_id, path=list(entry.google_path))
        return standard, google


_DECODER: Final = msgspec.json.Decoder(StandardMapping)


def encode_standard(mapping: StandardMapping) -> bytes:
    return msgspec.json.format(msgspec.json.encode(mapping), indent=2) + b"\n"


def decode_standard(raw: bytes, where: Path | str = STANDARD_FILE) -> StandardMapping:
    """Parse ``standard.json``; a bad or unknown-format file is a :class:`BundleError`."""
    try:
        mapping = _DECODER.decode(raw)
    except msgspec.DecodeError as exc:  # ValidationError too: it names the field
        raise BundleError(f"{where}: {exc}; re-run prodcat taxonomy apply") from exc
    if mapping.format != STANDARD_FORMAT:
        raise BundleError(
            f"{where}: standard mapping format {mapping.format!r} is not supported "
            f"(this prodcat reads {STANDARD_FORMAT})"
        )
    return mapping


def read_standard(root: Path) -> StandardMapping | None:
    """The bundle's ``standard.json``, or None when it has none."""
    path = Path(root) / STANDARD_FILE
    if not path.is_file():
        return None
    return decode_standard(path.read_bytes(), path)


_FIELD_ENCODER: Final = msgspec.json.Encoder()


def _event_fields(standard: StandardCategory | None, google: GoogleCategory | None) -> bytes:
    """``"standard_category":…,"google_product_category":…`` exactly as msgspec encodes them
    inside a :class:`~workers.core.events.CategorizedEvent`."""
    encode = _FIELD_ENCODER.encode
    return b'"standard_category":%s,"google_product_category":%s' % (
        encode(standard),
        encode(google),
    )


class StandardTable:
    """Per model: the standard fields of every category it can answer, pre-encoded.

    ``leaf_fields[i]`` belongs to leaf ``i`` of the taxonomy, ``node_fields[j]`` to inner
    node ``j`` (:attr:`Taxonomy.node_paths` order)."""

    def __init__(self, taxonomy: Taxonomy, mapping: StandardMapping | None) -> None:
        self.mapping = mapping
        entries = mapping.by_path() if mapping is not None else {}
        self._values: dict[tuple[str, ...], tuple[StandardCategory | None, GoogleCategory | None]]
        self._values = {}
        if mapping is not None:
            for path in (*taxonomy.leaves, *taxonomy.node_paths):
                self._values[path] = mapping.fields(entries.get(path))
        self.leaf_fields = self._encoded(taxonomy.leaves)
        self.node_fields = self._encoded(taxonomy.node_paths)

    def _encoded(self, paths: Sequence[tuple[str, ...]]) -> npt.NDArray[np.object_]:
        out = np.empty(len(paths), dtype=object)
        cache: dict[tuple[str | None, str | None, str | None], bytes] = {}
        for i, path in enumerate(paths):
            standard, google = self._values.get(path, (None, None))
            key = (
                None if standard is None else standard.id,
                None if standard is None else standard.match,
                None if google is None else google.id,
            )
            encoded = cache.get(key)
            if encoded is None:
                encoded = cache[key] = (
                    NULL_FIELDS if standard is None else _event_fields(standard, google)
                )
            out[i] = encoded
        return out

    @property
    def active(self) -> bool:
        """True when the model carries a mapping."""
        return self.mapping is not None

    def fields_of(self, decided: Decided) -> list[bytes]:
        """The standard fields of each item's answer (leaf or backed-off node)."""
        fields = self.leaf_fields[decided.best]
        backed = decided.node >= 0
        if backed.any():
            fields[backed] = self.node_fields[decided.node[backed]]
        out: list[bytes] = fields.tolist()
        return out

    def fields_for(self, path: Sequence[str]) -> bytes:
        """The pre-encoded standard fields of one category path (the slow path, for one
        :class:`~workers.inference.taxonomy.Decision`; batches use :meth:`fields_of`)."""
        standard, google = self.values(path)
        return NULL_FIELDS if standard is None else _event_fields(standard, google)

    def values(self, path: Sequence[str]) -> tuple[StandardCategory | None, GoogleCategory | None]:
        """The event values for a category path (any path: an override may name one the
        model does not know; then both are None)."""
        return self._values.get(tuple(path), (None, None))

    def summary(self) -> Mapping[str, int]:
        counts = {"categories": 0, "matched": 0, "reviewed": 0, "low": 0}
        for entry in self.mapping.categories if self.mapping else ():
            counts["categories"] += 1
            counts["matched"] += entry.match is not None
            counts["reviewed"] += entry.reviewed
            counts["low"] += entry.match == "low"
        return counts


def require_consistent(mapping: StandardMapping, taxonomy: Taxonomy, where: Path) -> None:
    """Every category of ``mapping`` must be one of the model's (a mapping made for
    another bundle is refused, naming the first strangers)."""
    known = {*taxonomy.leaves, *taxonomy.node_paths}
    strangers = [c.category_path for c in mapping.categories if tuple(c.category_path) not in known]
    if strangers:
        shown = "; ".join(" > ".join(p) for p in strangers[:3])
        raise BundleError(
            f"{where}: {len(strangers)} categories are not in this bundle's taxonomy "
            f"(e.g. {shown}); the mapping was made for another bundle"
        )
