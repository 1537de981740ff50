"""Text normalization shared by training, export and serving.

:func:`normalize` is the one place where raw product text becomes the text the
featurizer and the cache key read. It is deterministic and depends only on the
standard library, on purpose: training (TensorFlow), export and the classify
worker must produce the same string for the same input.

The steps, in order (this order is part of featurizer spec version 1; changing
it changes the model input, so it needs a spec version bump):

1. **Entities.** If the text contains ``&``, character references that end in
   ``;`` are decoded once (``&amp;`` -> ``&``, ``&#233;`` / ``&#xE9;`` -> ``é``,
   ``&nbsp;`` -> no-break space). References without the ``;`` are left alone,
   so ``AT&T``, ``H&M`` or ``salt&notebook`` are not mangled the way HTML's
   legacy rules would. Decoding happens before markup removal because catalog
   feeds often double-encode markup (``&lt;p&gt;Soft&lt;/p&gt;``).
2. **Unicode NFKC.** Full-width forms become ASCII (``ＡＢＣ１２３`` -> ``ABC123``),
   ligatures and compatibility characters are unfolded (``ﬁ`` -> ``fi``,
   ``½`` -> ``1⁄2``).
3. **Markup.** If the text contains ``<``, ``<script>``/``<style>`` elements
   (with their content), comments ``<!-- ... -->`` and tags (``<`` followed by
   an ASCII letter, ``/``, ``!`` or ``?``, up to the next ``>``) are replaced by
   one space. ``<5kg``, ``a < b`` or ``<新品>`` are text and stay.
4. **Case folding**, ``str.casefold`` (``Straße`` -> ``strasse``), then NFKC
   again, because folding can leave a non-NFKC string. The composition
   ``NFKC(casefold(NFKC(x)))`` is idempotent.
5. **Invisible characters** are dropped: C0/C1 controls other than whitespace,
   the format characters (Unicode category Cf: soft hyphen, zero-width space and
   joiners, bidi marks, BOM, ...), variation selectors and lone surrogates.
6. **Whitespace**: every run of Unicode whitespace (``str.split()``) becomes one
   ASCII space; the result has no leading or trailing space.

ASCII input takes a fast path with the same result (``lower()`` equals
``casefold()`` and NFKC is the identity on ASCII).

Unicode-dependent steps (NFKC, casefold, the character classes of
:mod:`workers.inference.featurizer`) use the Unicode database of the running Python
(``unicodedata.unidata_version``; 14.0 on 3.11, 15.0 on 3.12). Versions differ
only on characters that newer standards assigned.

:func:`title_key` is the grouping key for near-exact duplicate titles: the
normalized text with everything except letters, marks and digits removed.
"""

from __future__ import annotations

import html
import re
import unicodedata

__all__ = ["normalize", "title_key"]

_ENTITY = re.compile(r"&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")

_MARKUP = re.compile(
    r"<(script|style)\b[^>]*>.*?</\1\s*>"  # elements whose content is not text
    r"|<!--.*?-->"  # comments
    r"|<[A-Za-z/!?][^<>]*>",  # tags, closing tags, <!DOCTYPE>, <?xml?>, <![CDATA[
    re.IGNORECASE | re.DOTALL,
)

# Controls that are not whitespace (whitespace controls are handled by str.split),
# Unicode 14 format characters (Cf), variation selectors, surrogates.
_INVISIBLE = re.compile(
    "["
    "\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f"
    "\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e"
    "\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb"
    "\U000110bd\U000110cd\U00013430-\U00013438\U0001bca0-\U0001bca3"
    "\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f"
    "\ufe00-\ufe0f\U000e0100-\U000e01ef"
    "\ud800-\udfff"
    "]+"
)

# Variation selectors are printable (category Mn): str.isprintable() does not see them.
_SELECTORS = re.compile("[\ufe00-\ufe0f\U000e0100-\U000e01ef]")

_ASCII_NON_ALNUM = re.compile(r"[^a-z0-9]+")


def _decode_entity(match: re.Match[str]) -> str:
    return html.unescape(match.group(0))


def normalize(text: str) -> str:
    """Normalize product text: entities, NFKC, markup, case folding, invisibles, whitespace.

    >>> normalize("<b>Ｆｒｅｓｈ</b>&amp;  Tasty\\u200b ")
    'fresh & tasty'
    """
    if not text:
        return ""
    if "&" in text:
        text = _ENTITY.sub(_decode_entity, text)
    if text.isascii():
        if "<" in text:
            text = _MARKUP.sub(" ", text)
        text = text.lower()
        if not text.isprintable():
            text = _INVISIBLE.sub("", text)
        return " ".join(text.split())
    text = unicodedata.normalize("NFKC", text)
    if "<" in text:
        text = _MARKUP.sub(" ", text)
    text = unicodedata.normalize("NFKC", text.casefold())
    if not text.isprintable() or _SELECTORS.search(text):  # both much faster than the sub
        text = _INVISIBLE.sub("", text)
    return " ".join(text.split())


def title_key(text: str) -> str:
    """Group key for near-exact duplicate titles.

    ``normalize(text)`` with every character that is not a letter, a mark or a
    number (Unicode categories L*, M*, N*) removed, spaces included. So case,
    width, markup, punctuation, symbols, emoji and spacing do not matter:
    ``"Tata Salt - 1 kg"``, ``"TATA SALT 1KG"`` and ``"tata-salt, 1 kg!"`` share
    the key ``"tatasalt1kg"``; ``"Tata Salt 500 g"`` does not. Text with no
    letter or digit has the key ``""``: callers should not group such rows
    together blindly.

    Export uses it to keep every copy of a title on one side of a
    train/validation/test split.
    """
    norm = normalize(text)
    if norm.isascii():
        return _ASCII_NON_ALNUM.sub("", norm)
    return "".join(ch for ch in norm if ch.isalnum() or unicodedata.category(ch)[0] == "M")
