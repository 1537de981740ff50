"""workers.inference.textnorm: normalize() and title_key()."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workers.inference.textnorm import normalize, title_key


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("", ""),
        ("   ", ""),
        ("Plain Title", "plain title"),
        ("ＡＢＣ　１２３", "abc 123"),  # full-width letters, digits and space
        ("ＥＲＫＥ／鸿星尔克", "erke/鸿星尔克"),
        ("Straße", "strasse"),  # case folding, not just lower()
        ("ΣΊΣΥΦΟΣ", "σίσυφοσ"),
        ("ﬁne ½", "fine 1⁄2"),  # NFKC compatibility forms
        ("<b>x</b>&amp;", "x &"),
        ("&lt;p&gt;Soft &amp; Cosy&lt;/p&gt;", "soft & cosy"),  # double-encoded markup
        ("caf&eacute; &#233; &#xE9;", "café é é"),
        ("AT&T H&M salt&notebook", "at&t h&m salt&notebook"),  # no ';': not an entity
        ("Cable <5m> & a < b", "cable <5m> & a < b"),  # not tags
        ("<新品>上市", "<新品>上市"),
        ("a<br/>b<br>c", "a b c"),
        ("x<!-- hidden -->y", "x y"),
        ("<style>p{color:red}</style>Red <SCRIPT>alert(1)</SCRIPT>Shoe", "red shoe"),
        ("a\tb\nc\r\nd\x0be\x0cf", "a b c d e f"),
        ("a\x00b\x07c\x7fd\x9be", "abcde"),  # controls dropped, not spaced
        ("zero\u200bwidth\u00adsoft\ufeffbom\u200dzwj", "zerowidthsoftbomzwj"),
        ("nbsp\u00a0thin\u2009ideo\u3000end", "nbsp thin ideo end"),
        ("&nbsp;padded&nbsp;", "padded"),
        ("bad \ud800 surrogate", "bad surrogate"),
        ("芦\ufe00荟", "芦荟"),  # variation selector
    ],
)
def test_normalize_cases(raw: str, expected: str) -> None:
    assert normalize(raw) == expected


def test_ascii_fast_path_matches_general_path() -> None:
    # A non-ASCII character forces the general path; the ASCII part must come out the same.
    for text in ["Hello <i>World</i> &amp; Co", "TAB\tSEP\x01X", "  MiXeD  cAsE  "]:
        assert normalize(text + " é") == normalize(text) + " é"


_TEXT = st.text(
    alphabet=st.characters(codec="utf-8", categories=["L", "M", "N", "P", "S", "Z", "Cc", "Cf"]),
    max_size=60,
)


@given(_TEXT)
def test_normalize_output_shape(text: str) -> None:
    out = normalize(text)
    assert out == out.strip()
    assert "  " not in out
    assert all(ch == " " or not ch.isspace() for ch in out)
    assert not any(unicodedata.category(ch) in ("Cc", "Cf", "Cs") for ch in out)
    assert unicodedata.is_normalized("NFKC", out)
    out.encode("utf-8")  # no lone surrogates


@given(_TEXT.filter(lambda t: "&" not in t and "<" not in t))
def test_normalize_is_idempotent_without_markup(text: str) -> None:
    once = normalize(text)
    assert normalize(once) == once


@given(st.text(max_size=40))
def test_normalize_never_raises(text: str) -> None:
    normalize(text)
    title_key(text)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Tata Salt - 1 kg", "TATA SALT 1KG"),
        ("Tata Salt - 1 kg", "tata-salt, 1 kg!"),
        ("<b>Ｔ－Ｓｈｉｒｔ</b>", "t shirt"),
        ("跑步鞋 女式", "跑步鞋女式"),
        ("Cotton Kurta ✨", "cotton kurta"),
    ],
)
def test_title_key_groups_near_duplicates(a: str, b: str) -> None:
    assert title_key(a) == title_key(b)


@pytest.mark.parametrize(
    ("a", "b"),
    [("Tata Salt 1 kg", "Tata Salt 500 g"), ("Men Blue Shirt", "Women Blue Shirt")],
)
def test_title_key_separates_different_titles(a: str, b: str) -> None:
    assert title_key(a) != title_key(b)


def test_title_key_keeps_letters_marks_and_digits() -> None:
    assert title_key("Tata Salt - 1 kg") == "tatasalt1kg"
    assert title_key("हिन्दी किताब") == "हिन्दीकिताब"  # vowel signs (marks) survive
    assert title_key("!!! ---") == ""


@given(_TEXT)
def test_title_key_only_letters_marks_numbers(text: str) -> None:
    assert all(unicodedata.category(ch)[0] in "LMN" for ch in title_key(text))
