"""The demo's bookkeeping: outputs in, figures and scripted corrections out (no services)."""

from __future__ import annotations

import argparse
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from export.data.datasets import load_dataset
from workers.core.events import CategorizedEvent
from workers.core.settings import load_settings
from workers.demo.data import Row
from workers.demo.feedback import pick_corrections
from workers.demo.run import Demo

NOW = datetime(2026, 11, 29, 2, 30, tzinfo=UTC)


def _rows(data_dir: Path) -> list[Row]:
    """12 real products of each catalog, interleaved as the demo replays them."""
    lists = []
    for name in ("bigbasket", "cn_ecommerce_products"):
        examples, _ = load_dataset(name, data_dir, limit=12)
        lists.append(
            [Row(f"{name}-{e.product_id}", e.title, e.brand, dict(e.attributes), e.path)
             for e in examples]
        )  # fmt: skip
    return [r for pair in zip(*lists, strict=True) for r in pair]


def _output(row: Row, path: tuple[str, ...], source: str, review: bool) -> CategorizedEvent:
    return CategorizedEvent(
        event_type="product.categorized",
        event_id=uuid.uuid4().hex,
        product_id=row.product_id,
        category_id="c" + uuid.uuid4().hex[:8],
        category_path=list(path),
        confidence=0.5,
        alternatives=[],
        abstained=False,
        needs_review=review,
        model_version="demo-1",
        source=source,  # type: ignore[arg-type]
        causation_id=uuid.uuid4().hex,
        input_hash=uuid.uuid4().hex,
        event_time=NOW,
        classified_at=NOW,
    )


@pytest.fixture
def demo() -> Demo:
    args = argparse.Namespace(rate=200.0, corrections=3)
    return Demo(load_settings(), args, Path("var/demo/bundles/none"))


def test_outputs_become_figures_and_corrections(demo: Demo, data_dir: Path) -> None:
    rows = _rows(data_dir)
    demo.rows_by_id = {r.product_id: r for r in rows}
    wrong_ids = set()
    for i, row in enumerate(rows):
        if i % 3 == 0:  # wrong: another catalog's root category
            path = rows[(i + 1) % len(rows)].path[:1]
            wrong_ids.add(row.product_id)
        else:  # right, at the top level only (a backed-off answer still agrees)
            path = row.path[:1]
        demo.record(_output(row, path, "model", review=i % 2 == 0), NOW.timestamp() + 0.040)
    for row in rows[:4]:  # the same products again, from the cache
        demo.record(_output(row, row.path, "cache", review=False), NOW.timestamp() + 0.010)
    demo.tally.sent = len(rows) + 4

    state = demo.state()
    assert state.received == len(rows) + 4
    assert dict(state.sources) == {"model": len(rows), "cache": 4}
    assert state.judged == len(rows) + 4
    assert state.agreement == pytest.approx((len(rows) - len(wrong_ids) + 4) / (len(rows) + 4))
    assert state.review_ratio == pytest.approx((len(rows) // 2) / (len(rows) + 4))
    assert state.p50_ms == pytest.approx(40.0, abs=0.01)
    assert state.samples[-1].source == "cache"
    assert state.samples[-1].agrees is True

    skip = {rows[0].product_id}
    fixes = pick_corrections(rows, dict(demo.tally.model_answers), skip, 3)
    assert len(fixes) == 3
    assert {f.product_id for f in fixes} <= wrong_ids - skip
    datasets = [f.product_id.split("-", 1)[0] for f in fixes]
    assert datasets[0] != datasets[1]  # alternating English and Chinese
    for fix in fixes:
        row = demo.rows_by_id[fix.product_id]
        assert fix.right == row.path
        assert fix.wrong != row.path[: len(fix.wrong)]
        assert fix.model_version == "demo-1"

    fixed = demo.rows_by_id[fixes[0].product_id]
    demo.record(_output(fixed, fixed.path, "override", review=False), NOW.timestamp())
    after = demo.state()
    assert after.judged == state.judged  # a person's answer is not the model's
    assert demo.tally.overrides_seen[fixed.product_id] == 1
    assert after.samples[-1].source == "override"
    assert after.samples[-1].agrees is None
