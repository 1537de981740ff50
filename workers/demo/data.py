"""The demo's model and products, both through ``prodcat`` commands.

The demo never imports the training code: it trains its bundle with ``prodcat train`` and
takes the products it replays from ``prodcat heldout``, which writes the bundle's own test
split (rebuilt from its metadata: sources, ``--limit``, split seed and fractions, checked
against its data fingerprint). So every product the demo shows was held out of training.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from workers.core.categories import parse_category_path
from workers.core.errors import ProdcatError
from workers.core.events import ProductEvent, product_event
from workers.core.records import read_records, record_text, text_value
from workers.core.settings import Settings

__all__ = ["DEMO_DATASETS", "Row", "held_out_rows", "replay_event", "train_bundle"]

DEMO_DATASETS = ("bigbasket", "cn_ecommerce_products")
SAMPLE_SEED = 7
EPOCHS = 8


@dataclass(frozen=True)
class Row:
    """One catalog product, with the catalog's own category (to judge the model by)."""

    product_id: str  # "{dataset}-{id in the catalog}"
    title: str
    brand: str
    attributes: dict[str, str]
    path: tuple[str, ...]
    description: str = ""

    @property
    def dataset(self) -> str:
        return self.product_id.split("-", 1)[0]


def _prodcat(settings: Settings, *args: str) -> None:
    """Run ``prodcat ARGS`` (``python -m workers.cli``) with this settings' data folder."""
    env = {
        **os.environ,
        "PRODCAT_DATA_DIR": str(settings.data_dir),
        "PRODCAT_LOG_LEVEL": settings.log_level,  # --log-level debug reaches TensorFlow's lines
    }
    argv = [sys.executable, "-m", "workers.cli", *args]
    if subprocess.run(argv, env=env, check=False).returncode != 0:
        raise ProdcatError(f"the demo's `prodcat {args[0]}` failed (see its output above)")


def train_bundle(settings: Settings, datasets: tuple[str, ...], rows: int, out: Path) -> Path:
    """A small bundle on ``datasets`` (``rows`` per catalog, one bag network, no baseline),
    trained by ``prodcat train``, as ``out/<version>``."""
    version = f"demo-{'-'.join(datasets)}-{rows}"
    args = [
        "train",
        *(f"--data={d}" for d in datasets),
        f"--out={out}",
        f"--bundle-version={version}",
    ]
    # a quick, small model: one bag network, a fixed number of epochs, no baseline, and the
    # size knobs pinned so that the demo's bundle does not change when the defaults do
    args += ["--candidates=bag", f"--limit={rows}", f"--epochs={EPOCHS}", "--no-baseline"]
    args += ["--dim=64", f"--buckets={2**18}", "--label-smoothing=0"]
    _prodcat(settings, *args)
    return out / version


def held_out_rows(settings: Settings, bundle: Path, count: int) -> list[Row]:
    """About ``count`` rows of the bundle's test split (``prodcat heldout``): a seeded sample
    of each of its catalogs, interleaved."""
    with tempfile.TemporaryDirectory(prefix="prodcat-demo-") as tmp:
        path = Path(tmp) / "heldout.jsonl"
        _prodcat(settings, "heldout", str(bundle), f"--out={path}")
        by_source: dict[str, list[Row]] = {}
        for line, record in read_records(path, required=("title", "category_path")):
            text = record_text(record, path, line)
            source = text_value(record.get("source"))
            by_source.setdefault(source, []).append(
                Row(
                    f"{source}-{text_value(record.get('product_id'))}",
                    text.title,
                    text.brand,
                    dict(text.attributes),
                    parse_category_path(record.get("category_path")),
                )
            )
    if not by_source:
        raise ProdcatError(f"bundle {bundle} has no held-out rows to replay")
    per_source = max(1, count // len(by_source))
    rng = random.Random(SAMPLE_SEED)
    lists = [rng.sample(rows, min(per_source, len(rows))) for rows in by_source.values()]
    return [row for group in zip(*lists, strict=False) for row in group]


def replay_event(row: Row, event_type: str) -> ProductEvent:
    """A fresh ``product.created`` / ``product.updated`` event for ``row``."""
    return product_event(
        row,
        product_id=row.product_id,
        event_id=uuid.uuid4().hex,
        occurred_at=datetime.now(UTC),
        event_type=event_type,  # type: ignore[arg-type]
    )
