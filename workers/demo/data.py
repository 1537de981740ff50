"""The products ``prodcat demo`` replays: real catalog rows its model never trained on."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from workers.core.events import ProductEvent
from workers.core.settings import Settings

__all__ = ["DEMO_DATASETS", "Row", "held_out_rows", "product_event"]

DEMO_DATASETS = ("bigbasket", "cn_ecommerce_products")


@dataclass(frozen=True)
class Row:
    """One catalog product, with the catalog's own category (to judge the model by)."""

    product_id: str  # "{dataset}-{id in the catalog}"
    title: str
    brand: str
    attributes: dict[str, str]
    path: tuple[str, ...]

    @property
    def dataset(self) -> str:
        return self.product_id.split("-", 1)[0]


def held_out_rows(settings: Settings, datasets: tuple[str, ...], per_dataset: int) -> list[Row]:
    """Test-split rows (grouped by title, seed 0: the split ``prodcat train`` holds out)
    of each catalog, a seeded sample of ``per_dataset`` each, interleaved."""
    from export.data.datasets import load_dataset
    from export.data.splits import deduplicate, grouped_split

    lists: list[list[Row]] = []
    for name in datasets:
        examples, _ = load_dataset(name, settings.data_dir)
        examples, _ = deduplicate(examples)
        split = grouped_split(examples, seed=0)
        rng = random.Random(7)
        picked = rng.sample(list(split.test), min(per_dataset, len(split.test)))
        lists.append(
            [
                Row(
                    f"{name}-{examples[i].product_id}",
                    examples[i].title,
                    examples[i].brand,
                    dict(examples[i].attributes),
                    examples[i].path,
                )
                for i in picked
            ]
        )
    return [row for group in zip(*lists, strict=False) for row in group]


def product_event(row: Row, event_type: str) -> ProductEvent:
    """A fresh ``product.created`` / ``product.updated`` event for ``row``."""
    return ProductEvent(
        event_type=event_type,  # type: ignore[arg-type]
        event_id=uuid.uuid4().hex,
        product_id=row.product_id,
        title=row.title,
        brand=row.brand,
        attributes=row.attributes,
        occurred_at=datetime.now(UTC),
    )
