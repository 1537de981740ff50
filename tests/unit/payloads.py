"""Encoded ``product.created`` payloads for the pipeline's unit tests."""

from __future__ import annotations

from datetime import UTC, datetime

from workers.events import Codec, ProductEvent


def product_payloads(products: list[tuple[str, str]], codec: Codec) -> list[bytes]:
    """One payload per ``(product_id, title)``, event ids ``e-<i>``, occurred now."""
    now = datetime.now(UTC)
    return [
        codec.encode(
            ProductEvent(
                event_type="product.created",
                event_id=f"e-{i}",
                product_id=pid,
                title=title,
                occurred_at=now,
            )
        )
        for i, (pid, title) in enumerate(products)
    ]
