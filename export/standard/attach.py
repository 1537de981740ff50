"""Attach a reviewed mapping to a model bundle (``prodcat taxonomy apply``).

The mapping becomes part of the bundle: ``standard.json`` (one row per category of the
bundle's taxonomy, with its Shopify node, the Google category that node maps to, the
aligner's status and whether a person reviewed it), a ``standard`` summary in
``metadata.json``, and both in the manifest. The bundle gets a new version,
``<version before any mapping>.<taxonomy>-<first 8 hex of the mapping's sha256>``, so
the published model with a mapping is a version of its own: publishing and promoting it
swaps the mapping together with the model, and re-applying an edited CSV makes yet
another version.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import msgspec

from export.errors import DataError, ExportError
from export.standard.sheet import SheetRow, gid
from export.standard.trees import StandardTree
from workers.inference.bundle import METADATA_FILE, load_bundle, read_metadata, write_manifest
from workers.inference.metadata import StandardInfo, encode_metadata
from workers.inference.standard import (
    STANDARD_FILE,
    STANDARD_FORMAT,
    MappedCategory,
    StandardMapping,
    StandardTable,
    encode_standard,
)
from workers.inference.taxonomy import Taxonomy

MAX_VERSION = 128


def build_mapping(
    rows: Sequence[SheetRow],
    taxonomy: Taxonomy,
    shopify: StandardTree,
    google: StandardTree | None,
    to_google: Sequence[int] | None,
    where: Path,
) -> StandardMapping:
    """The bundle's ``standard.json`` from the sheet's rows. Every category of the bundle
    needs a row, and every row must be a category of the bundle."""
    known = list(dict.fromkeys((*taxonomy.node_paths, *taxonomy.leaves)))  # a leaf may be a node
    by_path = {row.category_path: row for row in rows}
    missing = [p for p in known if p not in by_path]
    if missing:
        shown = "; ".join(" > ".join(p) for p in missing[:3])
        raise DataError(
            where,
            f"{len(missing)} categories of the bundle have no row (e.g. {shown}); "
            "run prodcat taxonomy align for this bundle, or add rows (empty shopify_id for "
            "no standard category)",
        )
    strangers = [row for row in rows if row.category_path not in set(known)]
    if strangers:
        raise DataError(
            where,
            f"category {' > '.join(strangers[0].category_path)!r} is not in the bundle "
            f"({len(strangers)} such rows): the mapping was made for another bundle",
            line=strangers[0].line,
        )
    categories = []
    for path in sorted(known, key=lambda p: (len(p), p)):
        row = by_path[path]
        node = row.node
        mapped = -1 if node is None or to_google is None else int(to_google[node])
        categories.append(
            MappedCategory(
                category_path=list(path),
                id=None if node is None else gid(shopify, node),
                path=None if node is None else list(shopify.paths["en"][node]),
                google_id=google.ids[mapped] if google is not None and mapped >= 0 else None,
                google_path=(
                    list(google.paths["en"][mapped]) if google is not None and mapped >= 0 else None
                ),
                score=row.score,
                status=row.status,
                reviewed=row.reviewed,
            )
        )
    return StandardMapping(
        format=STANDARD_FORMAT,
        taxonomy=shopify.name,
        version=shopify.version,
        google_version=google.version if google is not None else None,
        categories=categories,
    )


def attach(bundle_dir: Path, mapping: StandardMapping, *, out: Path | None = None) -> Path:
    """Write ``mapping`` into the bundle (or a copy of it at ``out``), re-version and
    re-manifest it; returns the bundle directory."""
    source = load_bundle(bundle_dir)
    if source.root != Path(bundle_dir):
        raise ExportError(f"{bundle_dir}: apply needs a bundle directory, not an archive")
    root = Path(bundle_dir)
    if out is not None:
        if out.exists():
            raise ExportError(f"{out}: already exists; choose another --out")
        shutil.copytree(root, out)
        root = out
    meta = read_metadata(root)
    raw = encode_standard(mapping)
    sha = hashlib.sha256(raw).hexdigest()
    base = meta.standard.base_version if meta.standard is not None else meta.version
    suffix = f".{mapping.taxonomy}-{sha[:8]}"
    version = base[: MAX_VERSION - len(suffix)] + suffix
    counts = StandardTable(source.taxonomy, mapping).summary()
    info = StandardInfo(
        taxonomy=mapping.taxonomy,
        version=mapping.version,
        google_version=mapping.google_version,
        sha256=sha,
        base_version=base,
        categories=counts["categories"],
        matched=counts["matched"],
        reviewed=counts["reviewed"],
        low=counts["low"],
        applied_at=datetime.now(UTC),
    )
    try:
        (root / STANDARD_FILE).write_bytes(raw)
        new_meta = msgspec.structs.replace(meta, version=version, standard=info)
        (root / METADATA_FILE).write_bytes(encode_metadata(new_meta))
        write_manifest(root)
    except PermissionError as exc:
        raise ExportError(
            f"{root}: cannot write the bundle ({exc}); a published bundle is read-only: "
            "apply to your working copy, or pass --out NEW_DIR"
        ) from exc
    load_bundle(root)  # the result must load, mapping and all
    return root
