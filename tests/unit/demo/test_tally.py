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
from workers.demo.feedback import Correction, pick_corrections
from workers.demo.run import Demo
from workers.demo.tally import DemoResult, summary_lines, summary_rows
from workers.demo.view import cell_width

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
    exact_ids = set()
    for i, row in enumerate(rows):
        if i % 3 == 0:  # wrong: another catalog's root category
            path = rows[(i + 1) % len(rows)].path[:1]
            wrong_ids.add(row.product_id)
        elif i % 3 == 1:  # right, at the top level only (a backed-off answer)
            path = row.path[:1]
        else:  # the catalog's own leaf
            path = row.path
            exact_ids.add(row.product_id)
        demo.record(_output(row, path, "model", review=i % 2 == 0), NOW.timestamp() + 0.040)
    top_only = [r for r in rows if r.product_id not in wrong_ids | exact_ids]
    for row in top_only[:4]:  # the same products again, from the cache, with the same answer
        demo.record(_output(row, row.path[:1], "cache", review=False), NOW.timestamp() + 0.010)
    demo.tally.sent = len(rows) + 4

    state = demo.state()
    assert state.received == len(rows) + 4
    assert dict(state.sources) == {"model": len(rows), "cache": 4}
    # over distinct products: the cache's repeats are not counted again
    assert state.judged == len(rows)
    assert state.agreement == pytest.approx((len(rows) - len(wrong_ids)) / len(rows))
    assert state.exact_agreement == pytest.approx(len(exact_ids) / len(rows))
    assert 0 < state.exact_agreement < state.agreement < 1
    assert state.review_ratio == pytest.approx((len(rows) // 2) / (len(rows) + 4))
    assert state.p50_ms == pytest.approx(40.0, abs=0.01)
    assert state.run_p99_ms == pytest.approx(40.0, abs=0.01)
    assert state.samples[-1].source == "cache"
    assert state.samples[-1].agrees is True and state.samples[-1].exact is False

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


def test_summary_fits_80_columns(data_dir: Path) -> None:
    """The summary of a real run's shape (the default demo's bundle name and catalogs,
    Chinese corrections) in an 80-column terminal: no line wider than 80 cells."""
    rows = _rows(data_dir)
    english = next(r for r in rows if r.dataset == "bigbasket")
    chinese = max(
        (r for r in rows if r.dataset == "cn_ecommerce_products"), key=lambda r: len(r.title)
    )
    fixes = [
        Correction(r.product_id, r.title, other.path, r.path, "demo-1")
        for r, other in ((english, chinese), (chinese, english))
    ]
    result = DemoResult(
        run_id="6f631eea", sent=4803, received=4803,
        sources={"cache": 800, "model": 4000, "override": 3}, corrected=fixes,
        corrections_how="by the feedback app", cache_hit_ratio=0.168, p99_ms=948.2, max_lag=412,
        judged=3990, agreement=0.867, exact_agreement=0.721, worker_p99_bucket=(1.0, 2.5),
    )  # fmt: skip
    result.rows = summary_rows(
        result,
        bundle="demo-bigbasket-cn_ecommerce_products-20000",
        products="2000 from bigbasket, 2000 from cn_ecommerce_products",
        p50_ms=20.1,
        review_ratio=0.429,
        elapsed_s=61.4,
    )
    lines = summary_lines(result)
    assert max(cell_width(line) for line in lines) <= 80
    text = "\n".join(lines)
    assert "72.1% of 3,990 distinct products" in text and "86.7%" in text
    assert "in the 1–2.5 s bucket" in text and "948.2 ms" in text
    assert "broker's acknowledgement" in text  # the note says why the two p99s differ
    assert chinese.title[:5] in text
