"""Cleaning before training and the grouped, deterministic train/val/test split.

Real catalogs repeat the same product many times (bigbasket 4k repeated names,
myntra ~13k duplicate titles), so a random row split puts test items into
training. Here:

* :func:`deduplicate` collapses exact duplicates (same normalized title,
  brand and path) and reports near-duplicates (same :func:`group_key`) and
  titles whose rows disagree on the label (kept: that is real label noise).
* :func:`grouped_split` assigns whole groups (one group per
  ``title_key(title)``) to train, val or test by a stable hash of
  ``(seed, group key)``: no normalized title is ever on two sides, and the
  result does not depend on row order, ``PYTHONHASHSEED`` or any global RNG.
  The fractions are fractions of groups, so the row fractions come out close
  but not exact. Labels with few rows can land only in val/test; the split
  counts those rows.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from export.data.catalog import Example
from workers.inference.textnorm import normalize, title_key

GROUP_KEY = "title_key"
SPLIT_METHOD = "sha256(seed, title_key) -> uniform bucket in [0, 1): test, then val, then train"


def group_key(title: str) -> str:
    """The grouping key of a title: ``title_key``; titles without letters/digits keep their text."""
    return title_key(title) or normalize(title) or title


@dataclass(frozen=True, slots=True)
class DedupReport:
    """What :func:`deduplicate` removed and found."""

    rows_in: int
    rows_out: int
    exact_duplicates: int
    groups: int
    near_duplicate_rows: int
    conflicting_groups: int
    conflicting_rows: int

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    def summary(self) -> str:
        return (
            f"dedup: {self.rows_in} rows -> {self.rows_out} "
            f"({self.exact_duplicates} exact duplicates removed); {self.groups} title groups, "
            f"{self.near_duplicate_rows} rows share a group with another row; "
            f"{self.conflicting_groups} groups ({self.conflicting_rows} rows) have conflicting "
            "labels (kept)"
        )


def deduplicate(examples: Sequence[Example]) -> tuple[list[Example], DedupReport]:
    """Drop exact duplicates (normalized title + brand + path), keeping the first; report the rest.

    Rows whose titles share a group key but differ otherwise stay: they are
    near-duplicates (kept together by :func:`grouped_split`) or conflicting
    labels (real label noise, counted).
    """
    seen: set[tuple[str, str, tuple[str, ...]]] = set()
    kept: list[Example] = []
    for example in examples:
        key = (normalize(example.title), normalize(example.brand), example.path)
        if key not in seen:
            seen.add(key)
            kept.append(example)
    rows_per_group: Counter[str] = Counter()
    paths_per_group: defaultdict[str, set[tuple[str, ...]]] = defaultdict(set)
    for example in kept:
        gkey = group_key(example.title)
        rows_per_group[gkey] += 1
        paths_per_group[gkey].add(example.path)
    conflicting = [g for g, paths in paths_per_group.items() if len(paths) > 1]
    report = DedupReport(
        rows_in=len(examples),
        rows_out=len(kept),
        exact_duplicates=len(examples) - len(kept),
        groups=len(rows_per_group),
        near_duplicate_rows=sum(n for n in rows_per_group.values() if n > 1),
        conflicting_groups=len(conflicting),
        conflicting_rows=sum(rows_per_group[g] for g in conflicting),
    )
    return kept, report


def bucket(seed: int, key: str) -> float:
    """A stable uniform number in [0, 1) for ``(seed, key)``."""
    digest = hashlib.sha256(f"{seed}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


@dataclass(frozen=True, slots=True)
class Split:
    """Row indices of the three parts, and how they were made."""

    train: tuple[int, ...]
    val: tuple[int, ...]
    test: tuple[int, ...]
    seed: int
    test_frac: float
    val_frac: float
    group_key: str
    groups: dict[str, int]
    unseen_val_rows: int
    unseen_test_rows: int
    unseen_test_labels: int

    def describe(self) -> dict[str, Any]:
        """Plain data for the bundle metadata."""
        rows = len(self.train) + len(self.val) + len(self.test)
        return {
            "method": SPLIT_METHOD,
            "group_key": self.group_key,
            "seed": self.seed,
            "test_frac": self.test_frac,
            "val_frac": self.val_frac,
            "rows": {"train": len(self.train), "val": len(self.val), "test": len(self.test)},
            "row_fractions": {
                name: round(len(part) / rows, 4) if rows else 0.0
                for name, part in (("train", self.train), ("val", self.val), ("test", self.test))
            },
            "groups": dict(self.groups),
            "unseen_val_rows": self.unseen_val_rows,
            "unseen_test_rows": self.unseen_test_rows,
            "unseen_test_labels": self.unseen_test_labels,
        }


def grouped_split(
    examples: Sequence[Example], *, test_frac: float = 0.2, val_frac: float = 0.1, seed: int = 0
) -> Split:
    """Split rows into train/val/test by group, deterministically for a given ``seed``.

    A group whose bucket is below ``test_frac`` goes to test, below
    ``test_frac + val_frac`` to val, else to train.
    """
    if not (0.0 <= test_frac < 1.0 and 0.0 <= val_frac < 1.0 and test_frac + val_frac < 1.0):
        raise ValueError(
            f"need 0 <= test_frac, val_frac and test_frac + val_frac < 1, "
            f"got test_frac={test_frac}, val_frac={val_frac}"
        )
    parts: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    groups: dict[str, set[str]] = {"train": set(), "val": set(), "test": set()}
    where: dict[str, str] = {}
    for index, example in enumerate(examples):
        key = group_key(example.title)
        part = where.get(key)
        if part is None:
            u = bucket(seed, key)
            part = "test" if u < test_frac else "val" if u < test_frac + val_frac else "train"
            where[key] = part
            groups[part].add(key)
        parts[part].append(index)
    trained = {examples[i].path for i in parts["train"]}
    unseen_test = [examples[i].path for i in parts["test"] if examples[i].path not in trained]
    return Split(
        train=tuple(parts["train"]),
        val=tuple(parts["val"]),
        test=tuple(parts["test"]),
        seed=seed,
        test_frac=test_frac,
        val_frac=val_frac,
        group_key=GROUP_KEY,
        groups={name: len(keys) for name, keys in groups.items()},
        unseen_val_rows=sum(1 for i in parts["val"] if examples[i].path not in trained),
        unseen_test_rows=len(unseen_test),
        unseen_test_labels=len(set(unseen_test)),
    )
