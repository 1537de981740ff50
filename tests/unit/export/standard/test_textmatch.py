"""Features for matching names and titles, and the sparse TF-IDF index."""

from __future__ import annotations

import math

import numpy as np
import pytest

from export.standard.textmatch import (
    SparseIndex,
    features,
    han_grams,
    has_han,
    name_key,
    stem,
    words,
)


@pytest.mark.parametrize(
    ("word", "stemmed"),
    [
        ("accessories", "accessori"),
        ("accessory", "accessori"),
        ("cookies", "cooki"),
        ("cookie", "cooki"),
        ("biscuit", "cooki"),
        ("watches", "watch"),
        ("shoes", "shoe"),
        ("boxes", "box"),
        ("glass", "glass"),
        ("jewellery", "jewelri"),
        ("biscuits", "cooki"),
        ("tea", "tea"),
    ],
)
def test_stem(word: str, stemmed: str) -> None:
    assert stem(word) == stemmed


def test_words_join_hyphens_drop_possessives_and_stopwords() -> None:
    assert words("Men's T-Shirts & Tops") == ["men", "shirt", "top", "tshirt"]
    assert words("Tshirts") == ["tshirt"]  # meets "T-Shirts" through the joined form
    assert words("Oils & Vinegar for the Kitchen") == ["oil", "vinegar", "kitchen"]


def test_chinese_characters_and_pairs_with_latin_neighbours() -> None:
    assert han_grams("T恤") == han_grams("T 恤") == ["恤", "t恤"]
    assert han_grams("豆浆机") == ["豆", "浆", "机", "豆浆", "浆机"]
    assert set(features("九阳 豆浆机 JYD-P11", "zh")) >= {"豆浆", "浆机", "jyd"}
    assert has_han("家用电器 > 厨房电器") and not has_han("Kitchen > 锅 pots and pans and more")


def test_names_get_character_ngrams_at_a_lower_weight() -> None:
    f = features("Deos", "en", chars=True)
    assert f["deo"] == 1.0 and "# de" in f and f["#deo "] == pytest.approx(0.25)
    assert not any(k.startswith("#") for k in features("Deos", "en"))


def test_sparse_index_cosines_and_shares() -> None:
    docs = [{"tea": 1.0, "green": 1.0}, {"tea": 1.0, "set": 1.0}, {"coffee": 1.0}]
    index = SparseIndex(docs)
    scores = index.scores(index.vector({"tea": 1.0, "green": 1.0}))
    assert scores[0] == pytest.approx(1.0)
    assert 0 < scores[1] < scores[0] and scores[2] == 0.0
    shares = SparseIndex(docs, share=True)
    got = shares.scores({"tea": 1.0})
    assert got[2] == 0.0 and 0 < got[0] < 1 and 0 < got[1] < 1
    assert math.isclose(float(shares.scores({"tea": 1.0, "set": 1.0})[1]), 1.0, rel_tol=1e-6)
    assert np.all(index.scores({"unknown": 1.0}) == 0)


def test_names_are_the_same_name_by_their_words_or_their_han_characters() -> None:
    assert name_key("Watches", "en") == name_key("watch", "en")
    assert name_key("Sports & Energy Drinks", "en") == name_key("Energy Drinks & Sports", "en")
    assert name_key("Energy Drinks", "en") != name_key("Sports & Energy Drinks", "en")
    assert name_key("T 恤", "zh") == name_key("T恤", "zh") != name_key("恤", "zh")
    assert name_key("&", "en") == frozenset()
