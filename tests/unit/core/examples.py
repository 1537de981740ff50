"""The schemas' example events (``schemas/examples``), for the codec and events tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

EXAMPLE_DIR = Path(__file__).resolve().parents[3] / "schemas" / "examples"


def example(name: str) -> dict[str, Any]:
    """The example document of schema ``name`` (e.g. ``product.created.v1``)."""
    data: dict[str, Any] = json.loads((EXAMPLE_DIR / f"{name}.json").read_text(encoding="utf-8"))
    return data


def payload(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, ensure_ascii=False).encode("utf-8")


CREATED = example("product.created.v1")
UPDATED = example("product.updated.v1")
