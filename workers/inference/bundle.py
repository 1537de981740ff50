"""The model bundle: the one artefact that moves from training to serving.

A bundle is a directory (or a ``.tar.gz`` of one) holding only ONNX and JSON,
never pickles::

    model.onnx       the network; inputs word_ids/char_ids (int32 [B, L]),
                     output ``probs`` (float32 [B, leaves])
    metadata.json    format, version, labels (leaf paths, sorted), featurizer
                     spec, thresholds, evaluation summary, data fingerprint and
                     split, package versions, created_at: typed by
                     :class:`workers.inference.metadata.BundleMetadata`
    manifest.json    sha256 of every other file, and of the manifest body
    report/          optional evaluation report (Markdown, JSON, PNG)
    standard.json    optional mapping of the categories to a standard taxonomy
                     (``prodcat taxonomy apply``; :mod:`workers.inference.standard`)

Loading verifies the manifest before anything is parsed by onnxruntime, and
refuses a featurizer spec this version of prodcat does not support.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import msgspec

from workers.core.errors import BundleError
from workers.inference.metadata import (
    BUNDLE_FORMAT,
    BundleMetadata,
    Evaluation,
    decode_metadata,
)
from workers.inference.spec import FeaturizerSpec
from workers.inference.standard import StandardMapping, read_standard, require_consistent
from workers.inference.taxonomy import Taxonomy, Thresholds

MODEL_FILE = "model.onnx"
METADATA_FILE = "metadata.json"
MANIFEST_FILE = "manifest.json"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _bundle_files(root: Path) -> list[Path]:
    """Every file of the bundle except the manifest itself."""
    return sorted(p for p in root.rglob("*") if p.is_file() and p != root / MANIFEST_FILE)


def write_manifest(root: Path) -> str:
    """Hash every file of the bundle into ``manifest.json``; returns the bundle sha256."""
    files = {p.relative_to(root).as_posix(): sha256_file(p) for p in _bundle_files(root)}
    body = json.dumps(files, sort_keys=True).encode()
    bundle_sha = hashlib.sha256(body).hexdigest()
    manifest = {"format": BUNDLE_FORMAT, "files": files, "bundle_sha256": bundle_sha}
    (root / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return bundle_sha


WHAT_IS_A_BUNDLE: Final = (
    "A model bundle is the folder `prodcat train` writes (model.onnx, metadata.json, "
    "manifest.json), or the .tar.gz `prodcat export` packs it into; make one with "
    "`prodcat train --data CATALOG --out var/bundles` (CATALOG: a shared catalog name such as "
    "bigbasket, or your CSV/JSONL products file) and pass var/bundles/<version>."
)


def verify_manifest(root: Path, expected_sha256: str | None = None) -> str:
    """Check every file against the manifest. Returns the bundle sha256."""
    manifest_path = root / MANIFEST_FILE
    if not manifest_path.is_file():
        raise BundleError(
            f"{root}: no {MANIFEST_FILE}; this is not a prodcat bundle. {WHAT_IS_A_BUNDLE}"
        )
    try:
        manifest = json.loads(manifest_path.read_text())
        files: dict[str, str] = dict(manifest["files"])
    except (ValueError, KeyError, TypeError) as exc:
        raise BundleError(f"{manifest_path}: unreadable manifest ({exc})") from exc
    body = json.dumps(files, sort_keys=True).encode()
    bundle_sha = hashlib.sha256(body).hexdigest()
    if manifest.get("bundle_sha256") != bundle_sha:
        raise BundleError(f"{manifest_path}: bundle_sha256 does not match the file list")
    if expected_sha256 is not None and expected_sha256 != bundle_sha:
        raise BundleError(
            f"{root}: bundle sha256 is {bundle_sha}, but {expected_sha256} was published; "
            "the bundle was altered or is a different version"
        )
    present = {p.relative_to(root).as_posix() for p in _bundle_files(root)}
    for name in sorted(present - set(files)):
        raise BundleError(f"{root / name}: file is not listed in the manifest")
    for name, digest in sorted(files.items()):
        path = root / name
        if not path.is_file():
            raise BundleError(f"{path}: listed in the manifest but missing")
        actual = sha256_file(path)
        if actual != digest:
            raise BundleError(f"{path}: sha256 {actual} does not match the manifest ({digest})")
    return bundle_sha


@dataclass(frozen=True)
class Bundle:
    """A verified bundle on disk, with its parsed metadata."""

    root: Path
    sha256: str
    metadata: BundleMetadata
    featurizer: FeaturizerSpec
    taxonomy: Taxonomy
    thresholds: Thresholds
    standard: StandardMapping | None = None

    @property
    def version(self) -> str:
        return self.metadata.version

    @property
    def model_path(self) -> Path:
        return self.root / MODEL_FILE

    @property
    def evaluation(self) -> Evaluation | None:
        """The held-out evaluation training stored, if any."""
        return self.metadata.evaluation


def read_metadata(root: Path) -> BundleMetadata:
    """``metadata.json`` of the bundle at ``root``, typed (:mod:`workers.inference.metadata`).

    The format is checked first, so a bundle of another format is refused by name rather
    than by whichever field changed shape."""
    path = root / METADATA_FILE
    try:
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise BundleError(f"{path}: missing; this is not a prodcat bundle") from exc
    try:
        found = _FORMAT.decode(raw).format
    except msgspec.DecodeError as exc:
        raise BundleError(f"{path}: not valid JSON ({exc})") from exc
    if found != BUNDLE_FORMAT:
        raise BundleError(
            f"{path}: bundle format {found!r} is not supported "
            f"(this prodcat reads {BUNDLE_FORMAT}); re-export or upgrade prodcat"
        )
    try:
        return decode_metadata(raw)
    except msgspec.DecodeError as exc:  # ValidationError too: names the field
        raise BundleError(f"{path}: {exc}; re-export the bundle") from exc


class _Format(msgspec.Struct):
    format: object = None


_FORMAT = msgspec.json.Decoder(_Format)


def load_bundle(path: Path, *, expected_sha256: str | None = None) -> Bundle:
    """Verify and parse a bundle directory or ``.tar.gz`` archive.

    Archives are unpacked into a private temporary directory first (members
    with absolute paths or ``..`` are refused).
    """
    root = Path(path)
    if root.is_file() and root.name.endswith((".tar.gz", ".tgz")):
        root = _unpack(root)
    elif root.is_file():
        raise BundleError(f"{path}: is a file, not a model bundle. {WHAT_IS_A_BUNDLE}")
    if not root.is_dir():
        raise BundleError(
            f"{path}: no such bundle directory (from --bundle or PRODCAT_MODEL_BUNDLE). "
            + WHAT_IS_A_BUNDLE
        )
    bundle_sha = verify_manifest(root, expected_sha256)
    meta = read_metadata(root)
    if not (root / MODEL_FILE).is_file():
        raise BundleError(f"{root / MODEL_FILE}: missing")
    spec = FeaturizerSpec.from_dict(meta.featurizer)
    if not meta.labels:
        raise BundleError(f"{root / METADATA_FILE}: 'labels' must be a non-empty list of paths")
    try:
        taxonomy = Taxonomy([tuple(p) for p in meta.labels])
    except (TypeError, ValueError) as exc:
        raise BundleError(f"{root / METADATA_FILE}: bad 'labels': {exc}") from exc
    standard = read_standard(root)
    if standard is not None:
        require_consistent(standard, taxonomy, root / "standard.json")
    return Bundle(
        root=root,
        sha256=bundle_sha,
        metadata=meta,
        featurizer=spec,
        taxonomy=taxonomy,
        thresholds=Thresholds.from_dict(meta.thresholds),
        standard=standard,
    )


def pack_bundle(root: Path, archive: Path) -> Path:
    """Write the bundle directory as a reproducible ``.tar.gz``."""
    with tarfile.open(archive, "w:gz") as tar:
        for p in sorted(root.rglob("*")):
            if p.is_file():
                info = tar.gettarinfo(str(p), arcname=p.relative_to(root).as_posix())
                info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
                with p.open("rb") as fh:
                    tar.addfile(info, fh)
    return archive


def _unpack(archive: Path) -> Path:
    dest = Path(tempfile.mkdtemp(prefix="prodcat-bundle-"))
    try:
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(dest, filter="data")
    except (tarfile.TarError, OSError) as exc:
        raise BundleError(f"{archive}: cannot unpack bundle archive ({exc})") from exc
    return dest
