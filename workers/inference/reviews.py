"""Does a customer review suggest its product is filed under the wrong category?

A review-category bundle (``prodcat train --data online_shopping_10_cats``)
predicts which of ten review categories a review talks about. This module
compares that prediction with the product's current catalog path and decides
whether the product is *likely mis-categorized*: a review that is clearly about
a phone, on a product filed under fruit.

The two taxonomies differ, so the link between them is an explicit table,
:data:`CN_ECOMMERCE_MAP`: each review category lists the catalog path prefixes
(in the ``cn_ecommerce_products`` tree) that it covers. A product path takes the
review category of its longest matching prefix (``平板`` beats ``计算机`` for
``电脑、软件、办公 > 电脑整机 > 平板电脑``). The check is deliberately
conservative, because the review classifier only knows its ten categories and
answers one of them for any text:

* only a confident disagreement counts: the top category must pass the bundle's
  own leaf threshold (chosen on validation data for its target precision) and
  reach ``min_confidence``, *and* the product's own review category must be
  nearly ruled out (score at most ``max_own_score``; outside the top-k its score
  is bounded by the last alternative's). The second rule keeps a phone review
  that the model half-confuses with tablets from flagging a phone listing;
* a product whose path lies outside every mapped prefix is never flagged (the
  classifier cannot recognise, say, a guitar review), nor is a review predicted
  as a category with no catalog counterpart (``酒店``, hotels);
* reviews shorter than ``min_chars`` (``好评``, ``不错``) say nothing about the
  product type and are skipped.

Pure and TensorFlow-free: the caller runs the bundle (``workers.inference.model.Classifier``)
and passes its :class:`~workers.inference.taxonomy.Decision`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from workers.inference.taxonomy import Decision

__all__ = [
    "CN_ECOMMERCE_MAP",
    "CategoryMap",
    "ReviewCheck",
    "check_review",
]

CatalogPath = tuple[str, ...]
CategoryMap = Mapping[str, tuple[CatalogPath, ...]]

_FOOD: Final = "食品饮料、保健食品"
_PC: Final = "电脑、软件、办公"
_CLOTHES: Final = "服饰、鞋、包"
_SPORT: Final = "健康运动、户外"

#: The ten ``online_shopping_10_cats`` review categories -> the path prefixes of
#: the ``cn_ecommerce_products`` taxonomy they cover (checked against
#: ``allcategories.csv`` by tests/unit/inference/test_reviews.py). ``酒店`` (hotels) is
#: not a product category and has no prefix.
CN_ECOMMERCE_MAP: Final[CategoryMap] = MappingProxyType(
    {
        "书籍": (("出版物", "图书"), ("出版物", "电子书")),
        "平板": ((_PC, "电脑整机", "平板电脑"),),
        "手机": (("手机", "手机通讯", "手机"),),
        "水果": (
            (_FOOD, "生鲜食品、熟食", "水果"),
            (_FOOD, "有机食品", "有机蔬菜、有机菌菇、有机水果"),
        ),
        "洗发水": (("个护化妆", "身体护理", "洗发、护发"),),
        "热水器": (("家用电器", "大家电", "热水器"),),
        # 蒙牛 is a dairy brand: its reviews are about milk and yoghurt.
        "蒙牛": ((_FOOD, "饮料冲调", "乳制品"), (_FOOD, "休闲食品", "奶酪、乳品")),
        "衣服": (
            (_CLOTHES, "女装"),
            (_CLOTHES, "男装"),
            (_CLOTHES, "内衣"),
            (_SPORT, "运动服饰"),
            (_SPORT, "户外服饰"),
        ),
        "计算机": ((_PC, "电脑整机"),),
        "酒店": (),
    }
)


@dataclass(frozen=True, slots=True)
class ReviewCheck:
    """The verdict for one review. ``flagged`` means likely mis-categorized."""

    flagged: bool
    reason: str
    review_category: str
    product_review_category: str | None
    confidence: float


def product_review_category(path: Sequence[str], mapping: CategoryMap) -> str | None:
    """The review category whose prefix matches ``path`` longest, or None."""
    best: tuple[int, str] | None = None
    for category, prefixes in mapping.items():
        for prefix in prefixes:
            n = len(prefix)
            if tuple(path[:n]) == prefix and (best is None or n > best[0]):
                best = (n, category)
    return None if best is None else best[1]


def check_review(
    review: str,
    product_path: Sequence[str],
    prediction: Decision,
    *,
    mapping: CategoryMap = CN_ECOMMERCE_MAP,
    min_confidence: float = 0.5,
    max_own_score: float = 0.05,
    min_chars: int = 6,
) -> ReviewCheck:
    """Decide whether ``review`` (classified as ``prediction`` by a review-category
    bundle) flags the product filed under ``product_path`` as mis-categorized."""
    if not prediction.alternatives:
        raise ValueError("prediction has no alternatives: pass a Classifier decision")
    top = prediction.alternatives[0]
    predicted = top.path[-1]
    confidence = float(top.score)
    if predicted not in mapping:
        raise ValueError(
            f"review category {predicted!r} is not in the mapping; is this a "
            f"review-category bundle? mapped: {', '.join(mapping)}"
        )
    own = product_review_category(product_path, mapping)

    def verdict(flagged: bool, reason: str) -> ReviewCheck:
        return ReviewCheck(flagged, reason, predicted, own, confidence)

    if len("".join(review.split())) < min_chars:
        return verdict(False, f"review shorter than {min_chars} characters")
    if own is None:
        return verdict(False, "product category outside the review taxonomy")
    if not mapping[predicted]:
        return verdict(False, f"review category {predicted!r} has no catalog counterpart")
    if predicted == own:
        return verdict(False, "review matches the product category")
    if prediction.needs_review or confidence < min_confidence:
        return verdict(False, f"review category {predicted!r} not confident ({confidence:.2f})")
    own_score = next(
        (a.score for a in prediction.alternatives if a.path[-1] == own),
        prediction.alternatives[-1].score,  # outside the top-k: at most the last one's
    )
    if own_score > max_own_score:
        return verdict(False, f"product category {own!r} not ruled out ({own_score:.2f})")
    return verdict(
        True,
        f"review is about {predicted!r} ({confidence:.2f}), product is filed under {own!r}",
    )
