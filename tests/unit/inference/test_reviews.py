"""workers.inference.reviews on real review rows and the real cn_ecommerce category tree.

The predictions are built by hand here (the integration test
tests/integration/test_reviews.py gets them from a trained bundle), so each rule
of :func:`check_review` is exercised on its own.
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from export.data.catalog import Example
from export.data.cn_lines import load_category_names
from export.data.datasets import load_dataset
from workers.inference.reviews import CN_ECOMMERCE_MAP, check_review, product_review_category
from workers.inference.taxonomy import Alternative, Decision

FRUIT = ("食品饮料、保健食品", "生鲜食品、熟食", "水果")
PHONE = ("手机", "手机通讯", "手机")
TABLET = ("电脑、软件、办公", "电脑整机", "平板电脑")
LAPTOP = ("电脑、软件、办公", "电脑整机", "笔记本")
PIANO = ("乐器", "乐器相关", "钢琴")


@functools.cache
def _reviews(data_dir: Path) -> tuple[Example, ...]:
    rows, _ = load_dataset("online_shopping_10_cats", data_dir)
    return tuple(rows)


def review_of(data_dir: Path, category: str, min_len: int = 20) -> str:
    """The first real review of ``category`` with at least ``min_len`` characters."""
    return next(
        e.title for e in _reviews(data_dir) if e.path == (category,) and len(e.title) >= min_len
    )


def decision(scores: dict[str, float], *, needs_review: bool = False) -> Decision:
    """A review-category bundle's answer with these scores (highest first)."""
    ranked = sorted(scores.items(), key=lambda kv: -kv[1])
    alts = tuple(Alternative(str(i), (name,), score) for i, (name, score) in enumerate(ranked))
    top = alts[0]
    return Decision(top.category_id, top.path, top.score, alts, False, needs_review, 0)


def test_mapping_covers_the_review_categories_and_real_catalog_paths(data_dir: Path) -> None:
    assert set(CN_ECOMMERCE_MAP) == {e.path[0] for e in _reviews(data_dir)}
    text = (data_dir / "cn_ecommerce_products" / "allcategories.csv").read_text(encoding="utf-8")
    paths = set(load_category_names(text).values())
    for category, prefixes in CN_ECOMMERCE_MAP.items():
        for prefix in prefixes:
            assert any(p[: len(prefix)] == prefix for p in paths), (category, prefix)
    assert {FRUIT, PHONE, TABLET, LAPTOP, PIANO} <= paths


def test_longest_prefix_decides_the_product_review_category() -> None:
    assert product_review_category(TABLET, CN_ECOMMERCE_MAP) == "平板"
    assert product_review_category(LAPTOP, CN_ECOMMERCE_MAP) == "计算机"
    assert product_review_category(FRUIT, CN_ECOMMERCE_MAP) == "水果"
    assert product_review_category(("出版物", "图书", "文艺"), CN_ECOMMERCE_MAP) == "书籍"
    assert product_review_category(PIANO, CN_ECOMMERCE_MAP) is None
    assert product_review_category(("手机",), CN_ECOMMERCE_MAP) is None  # too coarse to judge


def test_confident_phone_review_flags_a_product_filed_under_fruit(data_dir: Path) -> None:
    review = review_of(data_dir, "手机")
    pred = decision({"手机": 0.95, "平板": 0.03, "水果": 0.02})
    check = check_review(review, FRUIT, pred)
    assert check.flagged
    assert (check.review_category, check.product_review_category) == ("手机", "水果")
    assert "手机" in check.reason and "水果" in check.reason
    assert not check_review(review, PHONE, pred).flagged


def test_real_fruit_review_on_fruit_is_not_flagged(data_dir: Path) -> None:
    review = review_of(data_dir, "水果")
    check = check_review(review, FRUIT, decision({"水果": 0.99, "蒙牛": 0.01}))
    assert not check.flagged
    assert check.reason == "review matches the product category"


def test_unconfident_predictions_never_flag(data_dir: Path) -> None:
    review = review_of(data_dir, "手机")
    split = decision({"手机": 0.45, "平板": 0.33, "书籍": 0.2, "水果": 0.02})
    assert not check_review(review, FRUIT, split).flagged
    below_bundle_threshold = decision({"手机": 0.95, "平板": 0.05}, needs_review=True)
    assert not check_review(review, FRUIT, below_bundle_threshold).flagged
    assert check_review(review, FRUIT, split, min_confidence=0.4).flagged


def test_the_products_own_category_must_be_nearly_ruled_out(data_dir: Path) -> None:
    review = review_of(data_dir, "手机")
    half_tablet = check_review(
        review, TABLET, decision({"手机": 0.7, "平板": 0.25, "计算机": 0.05})
    )
    assert not half_tablet.flagged and "not ruled out" in half_tablet.reason
    assert check_review(
        review, TABLET, decision({"手机": 0.96, "平板": 0.03, "书籍": 0.01})
    ).flagged
    # Fruit is outside the top 3: its score is at most the third one's.
    assert check_review(review, FRUIT, decision({"手机": 0.9, "平板": 0.06, "书籍": 0.04})).flagged
    assert not check_review(
        review, FRUIT, decision({"手机": 0.8, "平板": 0.1, "书籍": 0.1})
    ).flagged


def test_out_of_taxonomy_products_hotels_and_short_reviews_are_not_judged(
    data_dir: Path,
) -> None:
    phone_review = review_of(data_dir, "手机")
    confident_phone = decision({"手机": 0.99, "水果": 0.01})
    piano = check_review(phone_review, PIANO, confident_phone)
    assert not piano.flagged and piano.product_review_category is None
    hotel = check_review(review_of(data_dir, "酒店"), FRUIT, decision({"酒店": 0.99}))
    assert not hotel.flagged and "no catalog counterpart" in hotel.reason
    short = next(e.title for e in _reviews(data_dir) if len("".join(e.title.split())) < 4)
    assert not check_review(short, FRUIT, confident_phone).flagged


def test_a_prediction_from_another_bundle_is_an_error(data_dir: Path) -> None:
    with pytest.raises(ValueError, match="not in the mapping"):
        check_review(review_of(data_dir, "手机"), FRUIT, decision({"positive": 0.9}))
