"""workers.inference.featurizer: spec, hashing, batch transform, content hash.

The golden vectors pin the exact ids. If one of them fails, the model input has
changed: bump ``workers.inference.featurizer.VERSION`` (old bundles must then be rejected)
instead of editing the expected numbers.

``_reference_ids`` re-implements the algorithm of the module docstring in plain
Python, one item and one n-gram at a time; the vectorized implementation must
agree with it on arbitrary text.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import unicodedata
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workers.core.errors import BundleError
from workers.core.product import ProductText
from workers.inference.featurizer import Featurizer, PreparedText
from workers.inference.hashing import RUN_RANGES, class_table
from workers.inference.spec import SUPPORTED, FeaturizerSpec, FieldLimits

REPO = Path(__file__).resolve().parents[3]

# --------------------------------------------------------------------------- reference

_M64 = (1 << 64) - 1
_P = 0x9E3779B97F4A7C15
_FIELD_NAMES = ("title", "brand", "attributes", "description")


def _fmix64(h: int) -> int:
    h ^= h >> 33
    h = (h * 0xFF51AFD7ED558CCD) & _M64
    h ^= h >> 33
    h = (h * 0xC4CEB9FE1A85EC53) & _M64
    return h ^ (h >> 33)


def _hash(seed: int, text: str) -> int:
    h = seed
    for ch in text:
        h = (h * _P + ord(ch)) & _M64
    return _fmix64(h)


def _char_class(ch: str) -> str:
    cp = ord(ch)
    if 0x20000 <= cp <= 0x3FFFF:
        return "run"
    if cp > 0x3FFFF:
        return "sep"
    if unicodedata.category(ch)[0] not in "LMN":
        return "sep"
    if any(lo <= cp <= hi for lo, hi in RUN_RANGES):
        return "run"
    return "word"


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    current, current_cls = "", "sep"
    for ch in text + " ":
        cls = _char_class(ch)
        if cls != current_cls and current:
            out.append((current, current_cls))
            current = ""
        if cls != "sep":
            current += ch
        current_cls = cls
    return out


def _reference_ids(spec: FeaturizerSpec, item: PreparedText) -> tuple[list[int], list[int]]:
    """Word and char ids of one item, straight from the module docstring (untruncated)."""
    segments: list[tuple[str, str, bool]] = [
        (item.title, "title", False),
        (item.brand, "brand", False),
    ]
    segments += [(pair, "attributes", True) for pair in item.attributes]
    segments.append((item.description, "description", False))
    char_sizes = sorted(set(spec.char_ngrams) | set(spec.run_char_ngrams))
    words: list[int] = []
    chars: list[int] = []
    for text, field, atom in segments:
        if not text:
            continue
        word_seed = _hash(spec.seed, f"word:{field}")
        char_seed = _hash(spec.seed, f"char:{field}")
        toks = [(text, "atom")] if atom else _tokens(text)
        for j in range(len(toks)):
            for n in spec.word_ngrams:
                if n == 1 or (not atom and j - n + 1 >= 0):
                    gram = " ".join(t for t, _ in toks[j - n + 1 : j + 1])
                    words.append(_hash(word_seed, gram) % spec.word_buckets + 1)
        if atom:
            continue
        for tok, cls in toks:
            window, sizes = (
                (f" {tok} ", spec.char_ngrams) if cls == "word" else (tok, spec.run_char_ngrams)
            )
            for i in range(len(window)):
                for n in char_sizes:
                    if n not in sizes or i + n > len(window):
                        continue
                    if n == 1 and cls == "word" and i in (0, len(window) - 1):
                        continue
                    chars.append(_hash(char_seed, window[i : i + n]) % spec.char_buckets + 1)
    return words, chars


def _row(ids: list[int], width: int) -> list[int]:
    return (ids + [0] * width)[:width]


# --------------------------------------------------------------------------- strategies

_ALPHABET = st.one_of(
    st.sampled_from(list("abcxyzABC019 -/&;<>=.,!é")),
    st.sampled_from(list("鸿星尔克跑步鞋女式运动黑色の゙カタナ한국어ไทยभारती́")),
    st.sampled_from(
        ["\U0001f600", "\U0001f44d", "\U0001f3fd", "\u200d", "\u3000", "\uff21", "\U00020000"]
    ),
    st.characters(codec="utf-8"),
)
_TEXT = st.one_of(
    st.just(""),
    st.text(alphabet=_ALPHABET, max_size=40),
    st.sampled_from(
        ["<b>Bold</b> &amp; <i>It</i>", "&lt;p&gt;x&lt;/p&gt;", "<br/>", "&#x4E2D;&#25991;"]
    ),
)
_ITEMS = st.builds(
    ProductText,
    title=_TEXT,
    brand=_TEXT,
    description=_TEXT,
    attributes=st.dictionaries(_TEXT, _TEXT, max_size=3),
)

# Small tables and limits so collisions, truncation and every code path get exercised.
_SMALL = FeaturizerSpec(
    word_buckets=1000,
    char_buckets=997,
    word_ngrams=(1, 2, 3),
    char_ngrams=(1, 3, 5),
    run_char_ngrams=(1, 2),
    max_word_ids=12,
    max_char_ids=40,
    fields=FieldLimits(title=30, brand=10, attributes=24, description=20),
    seed=12345,
)
_FULL = FeaturizerSpec(fields=FieldLimits(description=200))


# --------------------------------------------------------------------------- golden vectors

# Titles written for this test in the style of the catalogs in shared/data (no rows copied).
_GOLDEN_ITEMS = [
    ProductText("Cold Pressed Groundnut Oil - 1 L Pouch", brand="Vedic Farms"),
    ProductText("Men Navy Blue Slim Fit Cotton Casual Shirt"),
    ProductText("飞跃 男式 帆布鞋 经典款 低帮休闲鞋 白色 42"),
    ProductText("Xiaomi/小米 充电宝10000mAh 移动电源 双USB输出"),
]
# (first 8 word ids, first 12 char ids) of each item with the default spec
_GOLDEN: list[tuple[list[int], list[int]]] = [
    (
        [168617, 235964, 232450, 95263, 94240, 168381, 75682, 5349],
        [139263, 242728, 220155, 208455, 207561, 26919, 98556, 73, 220399, 222701, 154613, 253057],
    ),
    (
        [206194, 252133, 255323, 100590, 178460, 30454, 69764, 163774],
        [215170, 236199, 3554, 61203, 121811, 38338, 115360, 66142, 181074, 31794, 28303, 100311],
    ),
    (
        [76910, 116734, 260979, 116458, 140907, 1723, 125915, 65589],
        [22499, 182265, 73818, 155213, 86055, 83622, 213768, 12761, 69696, 213871, 200095, 124100],
    ),
    (
        [146379, 179464, 89990, 221289, 144492, 28370, 157013, 21160],
        [130295, 247783, 261611, 55598, 120335, 1958, 62732, 235244, 174308, 244188, 12094, 28711],
    ),
]
# number of word and char ids of each item
_GOLDEN_LENGTHS = ([16, 15, 13, 15], [95, 81, 36, 64])


def test_golden_vectors() -> None:
    out = Featurizer().transform(_GOLDEN_ITEMS)
    got = [
        ([int(x) for x in out["word_ids"][i][:8]], [int(x) for x in out["char_ids"][i][:12]])
        for i in range(len(_GOLDEN_ITEMS))
    ]
    assert got == _GOLDEN


def test_golden_lengths() -> None:
    out = Featurizer().transform(_GOLDEN_ITEMS)
    words = (out["word_ids"] > 0).sum(axis=1).tolist()
    chars = (out["char_ids"] > 0).sum(axis=1).tolist()
    assert (words, chars) == _GOLDEN_LENGTHS


def test_golden_field_seeds_and_hash() -> None:
    # The seeds and the hash function itself, independent of tokenization.
    assert _hash(0, "") == 0
    assert _hash(0, "a") == 0x685FDF50E51FA977
    assert _hash(0, "word:title") == 0x1706894554CCB5D9
    assert Featurizer()._word_seeds[0] == 0x1706894554CCB5D9


# --------------------------------------------------------------------------- reference agreement


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_ITEMS, max_size=6))
def test_batch_equals_per_item_equals_reference(items: list[ProductText]) -> None:
    fz = Featurizer(_SMALL)
    batch = fz.transform(items)
    assert batch["word_ids"].shape == (len(items), _SMALL.max_word_ids)
    assert batch["char_ids"].shape == (len(items), _SMALL.max_char_ids)
    assert batch["word_ids"].dtype == np.int32
    assert batch["char_ids"].dtype == np.int32
    for i, item in enumerate(items):
        single = fz.transform([item])
        np.testing.assert_array_equal(batch["word_ids"][i], single["word_ids"][0])
        np.testing.assert_array_equal(batch["char_ids"][i], single["char_ids"][0])
        words, chars = _reference_ids(_SMALL, fz.prepare(item))
        assert batch["word_ids"][i].tolist() == _row(words, _SMALL.max_word_ids)
        assert batch["char_ids"][i].tolist() == _row(chars, _SMALL.max_char_ids)


@settings(max_examples=50, deadline=None)
@given(st.lists(_ITEMS, min_size=1, max_size=4))
def test_default_spec_matches_reference(items: list[ProductText]) -> None:
    fz = Featurizer(_FULL)
    out = fz.transform(items)
    for i, item in enumerate(items):
        words, chars = _reference_ids(_FULL, fz.prepare(item))
        assert out["word_ids"][i].tolist() == _row(words, _FULL.max_word_ids)
        assert out["char_ids"][i].tolist() == _row(chars, _FULL.max_char_ids)


@settings(max_examples=100, deadline=None)
@given(st.lists(_ITEMS, max_size=5))
def test_ids_in_range_and_padding_at_the_end(items: list[ProductText]) -> None:
    out = Featurizer(_SMALL).transform(items)
    for key, buckets in (("word_ids", _SMALL.word_buckets), ("char_ids", _SMALL.char_buckets)):
        ids = out[key]
        assert ids.min(initial=0) >= 0
        assert ids.max(initial=0) <= buckets
        # once a row has a 0, the rest of it is 0
        nonzero = ids > 0
        assert (np.sort(~nonzero, axis=1, kind="stable") == ~nonzero).all()


def test_class_table_matches_definition() -> None:
    table = class_table()
    codes = {"sep": 0, "word": 1, "run": 2}
    expected = np.array([codes[_char_class(chr(cp))] for cp in range(len(table) - 1)], np.uint8)
    np.testing.assert_array_equal(table[:-1], expected)
    assert table[-1] == 0  # every code point from U+40000 up is a separator


# --------------------------------------------------------------------------- behaviour


def test_empty_batch_and_empty_items() -> None:
    fz = Featurizer()
    out = fz.transform([])
    assert out["word_ids"].shape == (0, fz.spec.max_word_ids)
    assert out["char_ids"].shape == (0, fz.spec.max_char_ids)
    out = fz.transform([ProductText(""), ProductText("  <br/> !!! "), ProductText("ok")])
    assert not out["word_ids"][:2].any()
    assert not out["char_ids"][:2].any()
    assert out["word_ids"][2].any()


def test_truncation_keeps_highest_priority_ids() -> None:
    wide = FeaturizerSpec(max_word_ids=500, max_char_ids=2000, fields=FieldLimits(description=500))
    narrow = FeaturizerSpec(max_word_ids=5, max_char_ids=7, fields=FieldLimits(description=500))
    item = ProductText(
        "Organic Brown Rice Flakes Family Pack",
        brand="Green Valley",
        description="Rolled whole grain flakes for breakfast",
        attributes={"weight": "1 kg"},
    )
    full = Featurizer(wide).transform([item])
    cut = Featurizer(narrow).transform([item])
    assert cut["word_ids"][0].tolist() == full["word_ids"][0][:5].tolist()
    assert cut["char_ids"][0].tolist() == full["char_ids"][0][:7].tolist()
    # title first: the first ids are the title's own
    title_only = Featurizer(wide).transform([ProductText(item.title)])
    n_title = int((title_only["word_ids"][0] > 0).sum())
    assert full["word_ids"][0][:n_title].tolist() == title_only["word_ids"][0][:n_title].tolist()


def test_field_order_title_brand_attributes_description() -> None:
    spec = FeaturizerSpec(word_ngrams=(1,), fields=FieldLimits(description=100))
    fz = Featurizer(spec)
    parts = {
        "title": ProductText("t1 t2"),
        "brand": ProductText("", brand="b1"),
        "attributes": ProductText("", attributes={"k": "v"}),
        "description": ProductText("", description="d1 d2"),
    }
    ids = {
        name: [x for x in fz.transform([p])["word_ids"][0].tolist() if x]
        for name, p in parts.items()
    }
    item = ProductText("t1 t2", brand="b1", description="d1 d2", attributes={"k": "v"})
    row = [x for x in fz.transform([item])["word_ids"][0].tolist() if x]
    assert row == ids["title"] + ids["brand"] + ids["attributes"] + ids["description"]


def test_field_seeds_differ() -> None:
    fz = Featurizer(FeaturizerSpec(word_ngrams=(1,), fields=FieldLimits(description=50)))
    as_title = fz.transform([ProductText("apple")])
    as_brand = fz.transform([ProductText("", brand="apple")])
    as_desc = fz.transform([ProductText("", description="apple")])
    ids = {int(o["word_ids"][0, 0]) for o in (as_title, as_brand, as_desc)}
    assert len(ids) == 3
    chars = {tuple(o["char_ids"][0, :5].tolist()) for o in (as_title, as_brand, as_desc)}
    assert len(chars) == 3


def test_spec_seed_changes_ids() -> None:
    a = Featurizer(FeaturizerSpec(seed=1)).transform([ProductText("apple juice")])
    b = Featurizer(FeaturizerSpec(seed=2)).transform([ProductText("apple juice")])
    assert a["word_ids"][0, 0] != b["word_ids"][0, 0]


def test_attributes_are_key_value_tokens_in_sorted_order() -> None:
    fz = Featurizer()
    a = fz.prepare(ProductText("x", attributes={"Colour": "Navy  Blue", "Size": "M", "": "x"}))
    b = fz.prepare(ProductText("x", attributes={"size": "M", "COLOUR": "navy blue", "k": ""}))
    assert a.attributes == b.attributes == ("colour=navy blue", "size=m")
    np.testing.assert_array_equal(
        fz.transform_prepared([a])["word_ids"], fz.transform_prepared([b])["word_ids"]
    )


def test_attribute_budget_skips_pairs_that_do_not_fit() -> None:
    fz = Featurizer(FeaturizerSpec(fields=FieldLimits(attributes=12)))
    prepared = fz.prepare(ProductText("x", attributes={"a": "1", "bb": "long value", "c": "2"}))
    assert prepared.attributes == ("a=1", "c=2")  # "bb=long value" (13) does not fit


def test_attribute_pairs_seen_before_give_the_same_texts_under_each_limit() -> None:
    # the second call of each featurizer reads the normalized pairs back from the cache
    attrs = {"baseColour": "Navy Blue", "gender": "Men", "usage": "Casual", "Ｓｅａｓｏｎ": "Fall"}
    wide = Featurizer()
    narrow = Featurizer(FeaturizerSpec(fields=FieldLimits(attributes=2)))
    first = wide.prepare(ProductText("Turtle Check Men Navy Blue Shirt", attributes=attrs))
    assert first.attributes == ("basecolour=navy blue", "gender=men", "season=fall", "usage=casual")
    assert wide.prepare(ProductText("Peter England Men Party Blue Jeans", attributes=attrs)) == (
        first._replace(title="peter england men party blue jeans")
    )
    # a raw cut of 4 * 2 characters: "basecolo=navy blu" and friends, none fits in 2
    assert narrow.prepare(ProductText("x", attributes=attrs)).attributes == ()
    assert narrow.prepare(ProductText("x", attributes={"a": "1"})).attributes == ()
    assert wide.prepare(ProductText("x", attributes={"a": "1", "k": " "})).attributes == ("a=1",)
    assert wide.prepare(ProductText("x", attributes={"a": "1", "k": " "})).attributes == ("a=1",)
    # the same raw pair cut at 4 * 5 characters before normalizing: "k=a" instead of "k=a b"
    spaced = {"k": "a" + " " * 30 + "b"}
    five = Featurizer(FeaturizerSpec(fields=FieldLimits(attributes=5)))
    for _ in range(2):
        assert wide.prepare(ProductText("x", attributes=spaced)).attributes == ("k=a b",)
        assert five.prepare(ProductText("x", attributes=spaced)).attributes == ("k=a",)


def test_field_limits_cut_normalized_text() -> None:
    fz = Featurizer(FeaturizerSpec(fields=FieldLimits(title=10, brand=3, description=0)))
    prepared = fz.prepare(
        ProductText("<b>Hello</b>  World Wide", brand="ABCDEF", description="ignored")
    )
    assert prepared == PreparedText("hello worl", "abc", (), "")
    prepared = fz.prepare(ProductText("Hello     World"))  # cut lands on a space
    assert prepared.title == "hello worl"
    assert fz.prepare(ProductText("ab cdefghijkl")).title == "ab cdefghi"
    assert fz.prepare(ProductText("abcdefghi jkl")).title == "abcdefghi"  # trailing space removed


def test_chinese_title_gets_char_ngrams_without_segmenter() -> None:
    spec = FeaturizerSpec(word_ngrams=(1,))
    fz = Featurizer(spec)
    out = fz.transform([ProductText("运动鞋")])
    # one word token; chars: 3 unigrams + 2 bigrams + 1 trigram
    assert int((out["word_ids"][0] > 0).sum()) == 1
    assert int((out["char_ids"][0] > 0).sum()) == 6
    mixed = fz.prepare(ProductText("ERKE/鸿星尔克 跑步鞋500ml"))
    assert [t for t, _ in _tokens(mixed.title)] == ["erke", "鸿星尔克", "跑步鞋", "500ml"]


def test_same_text_same_ids_regardless_of_neighbours() -> None:
    fz = Featurizer()
    item = ProductText("Basmati Rice 5 kg", brand="Royal")
    alone = fz.transform([item])
    crowd = fz.transform([ProductText("鸿星尔克 跑步鞋"), item, ProductText("", brand="x")])
    np.testing.assert_array_equal(alone["word_ids"][0], crowd["word_ids"][1])
    np.testing.assert_array_equal(alone["char_ids"][0], crowd["char_ids"][1])


def test_long_inputs() -> None:
    fz = Featurizer(FeaturizerSpec(fields=FieldLimits(description=5000)))
    item = ProductText("鞋" * 3000, brand="b" * 1000, description="word " * 5000)
    out = fz.transform([item] * 3)
    assert (out["char_ids"] > 0).all()
    assert (out["word_ids"][:, :1] > 0).all()


# --------------------------------------------------------------------------- spec


def test_spec_round_trip_through_json() -> None:
    for spec in (FeaturizerSpec(), _SMALL, FeaturizerSpec(char_ngrams=(), seed=2**64 - 1)):
        data = json.loads(json.dumps(spec.to_dict()))
        assert FeaturizerSpec.from_dict(data) == spec


def test_supported_constant() -> None:
    assert ("hashed-ngrams", 1) in SUPPORTED
    spec = FeaturizerSpec()
    assert (spec.kind, spec.version) in SUPPORTED


@pytest.mark.parametrize(("kind", "version"), [("x", 9), ("hashed-ngrams", 2), ("tfidf", 1)])
def test_unsupported_spec_rejected(kind: str, version: int) -> None:
    data = {**FeaturizerSpec().to_dict(), "kind": kind, "version": version}
    with pytest.raises(BundleError) as err:
        FeaturizerSpec.from_dict(data)
    assert str(err.value) == (
        f"featurizer spec kind {kind!r} version {version} is not supported by this prodcat "
        "(supports hashed-ngrams/1); retrain or upgrade prodcat"
    )


def _mutated(**changes: Any) -> dict[str, Any]:
    data = FeaturizerSpec().to_dict()
    for key, value in changes.items():
        if value is _DROP:
            del data[key]
        else:
            data[key] = value
    return data


_DROP = object()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (_mutated(extra=1), "unknown key(s) ['extra']"),
        (_mutated(seed=_DROP), "missing key(s) ['seed']"),
        (_mutated(word_buckets=0), "word_buckets must be an integer"),
        (_mutated(word_buckets=2**31), "word_buckets must be an integer"),
        (_mutated(char_buckets="1024"), "char_buckets must be an integer"),
        (_mutated(max_char_ids=True), "max_char_ids must be an integer"),
        (_mutated(word_ngrams=[]), "word_ngrams must not be empty"),
        (_mutated(char_ngrams=[5, 3]), "char_ngrams must be strictly increasing"),
        (_mutated(char_ngrams="345"), "expected a list of integers"),
        (_mutated(fields={"title": 10}), "'fields' must be an object"),
        (_mutated(fields={**FieldLimits().to_dict(), "title": -1}), "fields.title"),
        (_mutated(seed=-1), "seed must be an integer"),
    ],
)
def test_invalid_spec_rejected(data: dict[str, Any], message: str) -> None:
    with pytest.raises(BundleError, match="featurizer spec") as err:
        FeaturizerSpec.from_dict(data)
    assert message in str(err.value)


def test_spec_from_non_mapping_rejected() -> None:
    with pytest.raises(BundleError):
        FeaturizerSpec.from_dict([1, 2])  # type: ignore[arg-type]


def test_spec_constructor_validates() -> None:
    with pytest.raises(ValueError, match="not supported"):
        FeaturizerSpec(version=2)
    with pytest.raises(ValueError, match="max_word_ids"):
        FeaturizerSpec(max_word_ids=0)


# --------------------------------------------------------------------------- content hash


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (ProductText("<b>Fresh</b>  Milk 1L"), ProductText("fresh milk 1l")),
        (ProductText("ＦＲＥＳＨ Milk", brand="Amul"), ProductText("fresh milk", brand=" AMUL ")),
        (
            ProductText("x", attributes={"Size": "M", "Colour": "Red"}),
            ProductText("x", attributes={"colour": "red", "size": "m"}),
        ),
        # description is off by default: the model does not read it, the cache ignores it
        (ProductText("milk", description="one"), ProductText("milk", description="two")),
        # the model reads the pair as the one token "a=b=c" either way
        (ProductText("x", attributes={"a": "b=c"}), ProductText("x", attributes={"a=b": "c"})),
        # beyond the title limit
        (ProductText("a" * 200 + "xyz"), ProductText("a" * 200 + "abc")),
    ],
)
def test_content_hash_equal_when_model_input_equal(a: ProductText, b: ProductText) -> None:
    fz = Featurizer()
    assert fz.content_hash(a) == fz.content_hash(b)
    ta, tb = fz.transform([a]), fz.transform([b])
    np.testing.assert_array_equal(ta["word_ids"], tb["word_ids"])


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (ProductText("fresh milk 1l"), ProductText("fresh milk 2l")),
        (ProductText("fresh milk", brand="amul"), ProductText("fresh milk amul")),
        (ProductText("x", brand="ab"), ProductText("xab")),
        (ProductText("x", attributes={"a": "b"}), ProductText("x", brand="a=b")),
    ],
)
def test_content_hash_differs_when_model_input_differs(a: ProductText, b: ProductText) -> None:
    fz = Featurizer()
    assert fz.content_hash(a) != fz.content_hash(b)


def test_content_hash_format_and_batch() -> None:
    fz = Featurizer(FeaturizerSpec(fields=FieldLimits(description=100)))
    items = [ProductText("a"), ProductText("a", description="b")]
    hashes = fz.content_hashes(items)
    assert hashes == [fz.content_hash(i) for i in items]
    assert hashes[0] != hashes[1]
    assert all(len(h) == 32 and int(h, 16) >= 0 for h in hashes)


# --------------------------------------------------------------------------- across processes


def _data_dir() -> Path:
    return Path(os.environ.get("PRODCAT_DATA_DIR", REPO.parent / "shared" / "data"))


_CHILD = r"""
import csv, hashlib, itertools, sys
from pathlib import Path
from workers.inference.featurizer import Featurizer
from workers.inference.spec import FeaturizerSpec, FieldLimits
from workers.core.product import ProductText
items = [
    ProductText("Apple iPhone 13 (128GB) - Blue", brand="Apple", attributes={"colour": "blue"}),
    ProductText("小米 充电宝 10000mAh", description="<p>轻薄 &amp; 快充</p>"),
    ProductText("Ｔ－ｓｈｉｒｔ 👕 ÉTÉ", brand="Zara"),
]
if len(sys.argv) > 1:
    root = Path(sys.argv[1])
    with open(root / "bigbasket" / "BigBasket Products.csv", newline="", encoding="utf-8") as f:
        for row in itertools.islice(csv.DictReader(f), 300):
            items.append(ProductText(row["product"] or "", brand=row["brand"] or ""))
    with open(root / "myntra_styles" / "styles.csv", newline="", encoding="utf-8") as f:
        for r in itertools.islice(csv.reader(f), 1, 300):
            attrs = {"gender": r[1], "colour": r[5], "usage": r[8]}
            items.append(ProductText(",".join(r[9:]), attributes=attrs))
    with open(root / "cn_ecommerce_products" / "products.csv", encoding="utf-8") as f:
        for line in itertools.islice(f, 0, 30000, 100):
            parts = line.split(",", 2)
            if len(parts) == 3:
                items.append(ProductText(parts[2].rsplit(",", 3)[0]))
fz = Featurizer(FeaturizerSpec(fields=FieldLimits(description=100)))
out = fz.transform(items)
digest = hashlib.sha256()
for key in sorted(out):
    digest.update(out[key].tobytes())
digest.update("".join(fz.content_hashes(items)).encode())
print(len(items), digest.hexdigest())
"""


def _child_digests(*args: str) -> list[str]:
    results = []
    for hash_seed in ("0", "1", "2"):
        proc = subprocess.run(
            [sys.executable, "-c", _CHILD, *args],
            env={**os.environ, "PYTHONHASHSEED": hash_seed},
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        results.append(proc.stdout.strip())
    return results


def test_same_ids_across_processes_with_different_hash_seeds() -> None:
    results = _child_digests()
    assert results[0] == results[1] == results[2]


def test_same_ids_across_processes_on_real_rows() -> None:
    root = _data_dir()
    needed = ("bigbasket", "myntra_styles", "cn_ecommerce_products")
    if not all((root / name).is_dir() for name in needed):
        pytest.skip(f"real data not found at {root}; set PRODCAT_DATA_DIR to shared/data")
    results = _child_digests(str(root))
    assert results[0] == results[1] == results[2]
    assert int(results[0].split()[0]) > 600


def test_imports_only_numpy_and_stdlib() -> None:
    code = (
        "import sys, workers.inference.featurizer\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('tensorflow', 'keras', 'onnxruntime', 'pydantic', 'msgspec'))\n"
        "print(heavy)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert proc.stdout.strip() == "[]"
