"""The data side of a training run: load the catalogs and labels, clean, split.

:func:`prepare` turns a :class:`~export.training.config.TrainConfig` into
:class:`Prepared` examples: the catalogs named by ``--data`` (registry datasets or
products files), corrected by ``--labels`` files, sampled to ``--limit``, deduplicated and
split into train/val/test groups by normalized title (:mod:`export.data.splits`).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from export.data.catalog import Example, load_catalog_file
from export.data.datasets import DATASETS, load_dataset
from export.data.sources import fingerprint
from export.data.splits import bucket, deduplicate, grouped_split
from export.errors import ExportError, TooLittleDataError
from export.training.config import TrainConfig
from workers.inference.metadata import BundleMetadata
from workers.inference.taxonomy import Taxonomy

__all__ = ["Prepared", "load_examples", "merge_labels", "prepare", "rebuild_split", "sample_rows"]

log = logging.getLogger("prodcat.train")


@dataclass
class Prepared:
    """Examples after cleaning, split and featurized."""

    examples: list[Example]
    train: list[int]
    val: list[int]
    test: list[int]
    taxonomy: Taxonomy
    reports: list[dict[str, Any]]
    split: dict[str, Any]
    fingerprint: str


def merge_labels(catalog: Sequence[Example], labels: Sequence[Example]) -> list[Example]:
    """Apply corrections: a label row replaces the catalog row with the same product_id,
    unless the catalog's own label is newer (both carry ``label_time``). Among several
    label rows for one product, the newest wins (file order breaks ties)."""
    newest: dict[str, Example] = {}
    for row in labels:
        old = newest.get(row.product_id)
        if old is None or _not_older(row, old):
            newest[row.product_id] = row
    merged: list[Example] = []
    for ex in catalog:
        label = newest.get(ex.product_id)
        if label is not None and _not_older(label, ex):
            merged.append(replace(ex, path=label.path, label_time=label.label_time))
            del newest[ex.product_id]
        else:
            merged.append(ex)
            if label is not None:  # the catalog's own label is newer than the correction
                del newest[ex.product_id]
    return merged + list(newest.values())


def _not_older(a: Example, b: Example) -> bool:
    if a.label_time is None or b.label_time is None:
        return True
    return a.label_time >= b.label_time


def sample_rows(rows: Sequence[Example], n: int, seed: int) -> list[Example]:
    """A seeded sample of ``n`` rows spread over the whole file (files are often sorted
    by class, so the first ``n`` rows would cover only a few classes). Order is kept."""
    ranked = sorted(range(len(rows)), key=lambda i: bucket(seed, f"{i}\x1f{rows[i].title}"))
    return [rows[i] for i in sorted(ranked[:n])]


def load_examples(config: TrainConfig) -> tuple[list[Example], list[dict[str, Any]]]:
    """Catalogs named by ``--data`` (dataset names or CSV/JSONL files), then labels files.

    A labels file (for example one exported from the ``category.labels`` topic)
    overrides the catalog's label for the same product_id: newer corrections win.
    """
    examples: list[Example] = []
    reports: list[dict[str, Any]] = []
    for item in config.data:
        if item in DATASETS:
            rows, report = load_dataset(item, config.data_dir)
        else:
            rows, report = load_catalog_file(Path(item))
        log.info("%s", report.summary())
        if config.limit is not None and len(rows) > config.limit:
            rows = sample_rows(rows, config.limit, config.seed)
            log.info("sampled %d rows of %s (seed %d)", len(rows), item, config.seed)
        examples.extend(rows)
        reports.append(report.as_dict())
    for path in config.labels:
        rows, report = load_catalog_file(path)
        log.info("labels: %s", report.summary())
        reports.append(report.as_dict())
        examples = merge_labels(examples, rows)
    if not examples:
        raise ExportError(f"no usable rows in {', '.join(config.data)}; check --data")
    return examples, reports


def prepare(config: TrainConfig) -> Prepared:
    examples, reports = load_examples(config)
    examples, dedup = deduplicate(examples)
    reports.append({"dedup": dedup.as_dict()})
    split = grouped_split(
        examples, test_frac=config.test_frac, val_frac=config.val_frac, seed=config.seed
    )
    if len({e.path for e in examples}) < 2:
        raise TooLittleDataError(_too_few_categories(config, examples))
    taxonomy = Taxonomy.from_unsorted([examples[i].path for i in split.train])
    known = set(taxonomy.leaves)
    train = [i for i in split.train if examples[i].path in known]
    check_trainable(config, len(train), [examples[i].path for i in train], split.val, examples)
    return Prepared(
        examples=examples,
        train=train,
        val=list(split.val),
        test=list(split.test),
        taxonomy=taxonomy,
        reports=reports,
        split=split.describe(),
        fingerprint=fingerprint(examples),
    )


#: Fewest training rows ``prodcat train`` accepts, and fewest per category on average.
MIN_ROWS = 50
MIN_ROWS_PER_CATEGORY = 2.0


def _sources(config: TrainConfig) -> str:
    return ", ".join(config.data)


def _too_few_categories(config: TrainConfig, examples: Sequence[Example]) -> str:
    paths = sorted({e.label for e in examples})
    return (
        f"{_sources(config)}: {len(examples)} usable rows, all in "
        f"{len(paths)} category ({', '.join(paths[:3]) or 'none'}); a classifier needs at "
        "least 2 categories. Check the category_path column (levels joined with ' > '), "
        "or add rows of other categories."
    )


def check_trainable(
    config: TrainConfig,
    rows: int,
    paths: Sequence[tuple[str, ...]],
    val: Sequence[int],
    examples: Sequence[Example],
) -> None:
    """Refuse, before any training, data that cannot give a useful model: fewer than
    :data:`MIN_ROWS` training rows, fewer than 2 categories in them, fewer than
    :data:`MIN_ROWS_PER_CATEGORY` rows per category on average, or no validation row of
    a known category. Warn when most categories have a single training row."""
    counts = Counter(paths)
    what = f"{_sources(config)}: {rows} training rows in {len(counts)} categories"
    advice = (
        "label more products, merge rare categories into their parents (shorten their "
        "category_path), or drop categories with one or two products"
    )
    if rows < MIN_ROWS:
        raise TooLittleDataError(f"{what}; prodcat needs at least {MIN_ROWS}: {advice}")
    if len(counts) < 2:
        raise TooLittleDataError(f"{what}; a classifier needs at least 2 categories")
    if rows < MIN_ROWS_PER_CATEGORY * len(counts):
        raise TooLittleDataError(
            f"{what} ({rows / len(counts):.1f} per category); prodcat needs at least "
            f"{MIN_ROWS_PER_CATEGORY:g} per category on average: {advice}"
        )
    if not any(examples[i].path in counts for i in val):
        raise TooLittleDataError(
            f"{what}; none of the validation rows has a category seen in training, so "
            f"early stopping has nothing to go on: {advice}"
        )
    singles = sum(1 for n in counts.values() if n == 1)
    if singles > len(counts) / 2:
        log.warning(
            "%s; %d categories have a single training row: expect them to be predicted poorly (%s)",
            what,
            singles,
            advice,
        )


def rebuild_split(meta: BundleMetadata, data_dir: Path) -> Prepared:
    """The examples and split a bundle was trained and evaluated on, rebuilt from its
    metadata (sources, labels files, ``--limit``, split seed and fractions) and checked
    against its data fingerprint: its test rows are exactly the rows it was tested on."""
    data = meta.data
    if data is None:
        raise ExportError(
            f"bundle {meta.version} records no training data: its split cannot be rebuilt"
        )
    config = TrainConfig(
        data=tuple(data.sources),
        data_dir=data_dir,
        out=Path(),
        seed=data.split.seed,
        test_frac=data.split.test_frac,
        val_frac=data.split.val_frac,
        limit=data.limit,
        labels=tuple(Path(p) for p in data.labels_files),
    )
    prep = prepare(config)
    if prep.fingerprint != data.fingerprint:
        raise ExportError(
            f"the catalogs under {data_dir} are not the rows bundle {meta.version} was "
            f"trained on (data fingerprint {prep.fingerprint[:12]}, the bundle's "
            f"{data.fingerprint[:12]}): point PRODCAT_DATA_DIR at that data, or retrain"
        )
    return prep
