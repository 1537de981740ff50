"""workers/clicks/tally.py: decayed category tallies per query and the labels they make."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from export.data.catalog import load_catalog_file
from workers.clicks.tally import (
    QueryTally,
    add_click,
    decode_tally,
    encode_tally,
    label_of,
    normalize_query,
    query_id,
)
from workers.core.codec import Codec
from workers.core.events import LabelEvent
from workers.core.settings import ClicksSettings

DAL = ("Foodgrains, Oil & Masala", "Dals & Pulses", "Toor, Channa & Moong Dal")
SOUP = ("Gourmet & World Food", "Pasta, Soup & Noodles", "Soups")
DAY = 24 * 3600.0
S = ClicksSettings(half_life_s=7 * DAY, min_weight=3.0, min_share=0.6, max_categories=3)


def _tally(*clicks: tuple[tuple[str, ...], float, float]) -> QueryTally:
    tally = None
    for path, weight, at in clicks:
        tally = add_click(tally, path=path, weight=weight, at=at, shown="q", settings=S)
    assert tally is not None
    return tally


def test_weights_halve_every_half_life() -> None:
    tally = _tally((DAL, 4.0, 0.0), (SOUP, 1.0, 7 * DAY))
    assert tally.at == 7 * DAY
    assert tally.weights["Foodgrains, Oil & Masala > Dals & Pulses > Toor, Channa & Moong Dal"] == (
        pytest.approx(2.0)
    )
    late = add_click(tally, path=SOUP, weight=1.0, at=0.0, shown="q", settings=S)
    assert late.at == 7 * DAY  # an older event is decayed to the tally's time
    assert late.weights["Gourmet & World Food > Pasta, Soup & Noodles > Soups"] == pytest.approx(
        1.5
    )


def test_replaying_the_same_clicks_gives_the_same_tally() -> None:
    clicks = [(DAL, 1.0, i * 3600.0) for i in range(10)] + [(SOUP, 4.0, 5 * 3600.0)]
    assert encode_tally(_tally(*clicks)) == encode_tally(_tally(*clicks))
    assert decode_tally(encode_tally(_tally(*clicks))) == _tally(*clicks)


def test_a_label_needs_enough_weight_and_a_clear_majority() -> None:
    assert label_of(_tally((DAL, 1.0, 0.0), (DAL, 1.0, 1.0)), S) is None  # 2 < min_weight
    assert label_of(_tally((DAL, 1.0, 0.0), (DAL, 1.0, 1.0), (DAL, 1.0, 2.0)), S) == DAL
    split = _tally((DAL, 2.0, 0.0), (SOUP, 2.0, 1.0))
    assert label_of(split, S) is None  # 50% < min_share
    assert label_of(add_click(split, path=SOUP, weight=4.0, at=2.0, shown="q", settings=S),
                    S) == SOUP  # fmt: skip


def test_only_the_heaviest_categories_are_kept() -> None:
    paths = [("A", str(i)) for i in range(5)]
    tally = _tally(*((p, float(i + 1), 0.0) for i, p in enumerate(paths)))
    assert sorted(tally.weights) == ["A > 2", "A > 3", "A > 4"]


def test_queries_are_normalized_and_their_ids_fit() -> None:
    assert normalize_query("  Toor   DAL ") == "toor dal"
    assert normalize_query("Ｔｏｏｒ Dal") == "toor dal"
    assert query_id("toor dal") == "query:toor dal"
    long_id = query_id("x" * 300)
    assert long_id.startswith("query:sha256:") and len(long_id) <= 128


def test_a_query_label_is_a_training_row(tmp_path: Path) -> None:
    """What ``prodcat labels dump`` writes of search.query-labels is a file ``prodcat train``
    reads: the query as the title, its category, ``query:<normalized>`` as the product id."""
    label = LabelEvent(
        event_type="category.label", event_id="e1", product_id=query_id("toor dal"),
        title="toor dal", category_path=list(DAL), source="user",
        label_time=datetime(2026, 12, 1, tzinfo=UTC), feedback_event_id="clk-1",
    )  # fmt: skip
    path = tmp_path / "query-labels.jsonl"
    path.write_bytes(Codec().encode(label) + b"\n")
    (row,), _ = load_catalog_file(path)
    assert (row.product_id, row.title, row.path) == ("query:toor dal", "toor dal", DAL)
    assert row.label_time == datetime(2026, 12, 1, tzinfo=UTC)
