"""The model store: immutable, versioned bundles behind a small interface.

::

    store = open_store(settings.model.store)        # a directory tree by default
    stored = store.put(Path("var/bundles/v7"))     # verify, copy, seal; idempotent
    path = store.fetch("v7", expected_sha256=...)  # a local directory to load from

A published version never changes: :meth:`ModelStore.put` refuses a second bundle
with the same version but a different sha256, and :class:`DirectoryStore` writes each
bundle under a temporary name, verifies the copy against its ``manifest.json``, then
renames it into place and makes its files read-only. Readers always re-verify what
they fetch (``load_bundle(path, expected_sha256=...)``), so a bundle altered on disk
afterwards is refused, never served.

An object store (S3, GCS) plugs in by implementing :class:`ModelStore`; ``fetch``
then downloads into a local cache directory. :func:`open_store` picks the
implementation from the location's scheme (only plain paths today).
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from workers.core.errors import BundleError, ConfigError, ProdcatError
from workers.inference.bundle import MANIFEST_FILE, read_metadata, verify_manifest

__all__ = [
    "DirectoryStore",
    "ModelStore",
    "StoreUnavailableError",
    "StoredBundle",
    "VersionConflictError",
    "open_store",
]

log = logging.getLogger(__name__)


class StoreUnavailableError(ProdcatError):
    """The model store cannot be reached (missing mount, permissions, network)."""


class VersionConflictError(ProdcatError):
    """A different bundle was already published under this version."""


@dataclass(frozen=True, slots=True)
class StoredBundle:
    """A bundle in the store: its version, bundle sha256 and where it is."""

    version: str
    sha256: str
    location: str


class ModelStore(Protocol):
    """What prodcat needs from a model store."""

    def describe(self) -> str:
        """Where the store is, for log lines and errors."""
        ...

    def check(self) -> None:
        """Raise :class:`StoreUnavailableError` when the store cannot be read."""
        ...

    def put(self, bundle_dir: Path) -> StoredBundle:
        """Copy a verified bundle directory into the store under its version."""
        ...

    def fetch(self, version: str) -> Path:
        """A local directory holding ``version`` (not yet verified: the caller verifies)."""
        ...

    def versions(self) -> list[str]:
        """Every version in the store, sorted."""
        ...


class DirectoryStore:
    """Bundles as ``<root>/<version>/`` on a local disk or a mounted volume."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def describe(self) -> str:
        return str(self.root)

    def check(self) -> None:
        if not self.root.is_dir():
            raise StoreUnavailableError(
                f"model store {self.root} does not exist or is not a directory "
                "(setting PRODCAT_MODEL_STORE; is the volume mounted?)"
            )
        if not os.access(self.root, os.R_OK | os.X_OK):
            raise StoreUnavailableError(f"model store {self.root} is not readable")

    def location(self, version: str) -> Path:
        _check_version(version)
        return self.root / version

    def put(self, bundle_dir: Path) -> StoredBundle:
        source = Path(bundle_dir)
        sha = verify_manifest(source)
        version = read_metadata(source).version
        target = self.location(version)
        if target.exists():
            have = _manifest_sha(target)
            if have == sha:
                log.info("model store: %s is already stored (sha256 %s)", version, sha[:12])
                return StoredBundle(version, sha, str(target))
            raise VersionConflictError(
                f"model store {self.root} already holds version {version} with sha256 "
                f"{have}, not {sha}: published bundles are immutable; give the new bundle "
                "its own version (prodcat train --bundle-version ...)"
            )
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreUnavailableError(f"cannot create model store {self.root}: {exc}") from exc
        staging = self.root / f".incoming-{version}-{uuid.uuid4().hex[:8]}"
        try:
            shutil.copytree(source, staging)
            if verify_manifest(staging) != sha:  # the copy is what we verified
                raise BundleError(f"{staging}: the copy differs from {source}")
            _seal(staging)
            staging.rename(target)
        except BaseException:
            _remove(staging)
            raise
        log.info("model store: stored %s (sha256 %s) at %s", version, sha[:12], target)
        return StoredBundle(version, sha, str(target))

    def fetch(self, version: str) -> Path:
        self.check()
        target = self.location(version)
        if not (target / MANIFEST_FILE).is_file():
            raise BundleError(
                f"model store {self.root} has no bundle for version {version} "
                f"(expected {target}/{MANIFEST_FILE})"
            )
        return target

    def versions(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(
            p.name
            for p in self.root.iterdir()
            if p.is_dir() and not p.name.startswith(".") and (p / MANIFEST_FILE).is_file()
        )


def open_store(location: Path | str) -> ModelStore:
    """The store for a configured location (``PRODCAT_MODEL_STORE``)."""
    text = str(location)
    if "://" in text and not text.startswith("file://"):
        scheme = text.split("://", 1)[0]
        raise ConfigError(
            f"model store {text}: the {scheme}:// scheme has no store implementation yet; "
            "mount the bucket as a directory, or implement workers.lifecycle.store.ModelStore"
        )
    return DirectoryStore(Path(text.removeprefix("file://")))


def _check_version(version: str) -> None:
    if not version or version.startswith(".") or "/" in version or "\\" in version:
        raise BundleError(f"model version {version!r} is not usable as a directory name")


def _manifest_sha(root: Path) -> str | None:
    try:
        return verify_manifest(root)
    except BundleError:
        return None


def _seal(root: Path) -> None:
    """Make every file read-only (directories stay writable so the store can be pruned)."""
    read_only = stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH
    for p in root.rglob("*"):
        if p.is_file():
            p.chmod(read_only)


def _remove(root: Path) -> None:
    if root.exists():
        for p in root.rglob("*"):
            if p.is_file():
                p.chmod(stat.S_IWUSR | stat.S_IRUSR)
        shutil.rmtree(root, ignore_errors=True)
