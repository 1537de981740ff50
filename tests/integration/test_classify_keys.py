"""Input messages keyed otherwise than by their product_id (schemas/README.md, "Keys and
ordering"): classified as usual, their output keyed by the product_id, and counted in
``prodcat_key_mismatch_total{kind}``. Before: nothing noticed them."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest

from export.data.catalog import Example
from tests.integration.classify_support import (
    CODEC,
    Setup,
    categorized,
    produce,
    read_all,
    running_worker,
)
from workers.core.events import product_event

pytestmark = [pytest.mark.integration]


def test_null_and_wrong_keys_are_classified_counted_and_reported(
    setup: Setup, catalog_rows: list[Example], caplog: pytest.LogCaptureFixture
) -> None:
    now = datetime.now(UTC)
    rows = catalog_rows[:3]
    events = [
        product_event(r, product_id=r.product_id, event_id=f"key-{i}", occurred_at=now)
        for i, r in enumerate(rows)
    ]
    keys = [events[0].product_id.encode(), None, b"not-" + events[2].product_id.encode()]
    caplog.set_level(logging.WARNING, logger="workers.classify.keys")
    with running_worker(setup.settings()) as w:
        produce(
            setup.bootstrap,
            setup.topics["product_created"],
            [(key, CODEC.encode(e), None) for key, e in zip(keys, events, strict=True)],
        )
        out = read_all(setup.bootstrap, setup.topics["categorized"], expect=3)
        registry = w.worker.metrics.registry
        counts = {
            kind: registry.get_sample_value("prodcat_key_mismatch_total", {"kind": kind})
            for kind in ("missing", "differs")
        }
    assert {m.key() for m in out} == {e.product_id.encode() for e in events}  # keyed right
    assert {e.causation_id for e in categorized(out)} == {"key-0", "key-1", "key-2"}
    assert counts == {"missing": 1.0, "differs": 1.0}
    [report] = [r.getMessage() for r in caplog.records if r.name == "workers.classify.keys"]
    assert "is not its product_id" in report and "classified as usual" in report
