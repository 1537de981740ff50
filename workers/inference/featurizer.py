"""Product text -> hashed word and character n-gram ids, for training and serving alike.

This module is the contract between the offline TensorFlow training and the
onnxruntime classify worker: both call :meth:`Featurizer.transform` with the
:class:`~workers.inference.spec.FeaturizerSpec` saved in the model bundle, so their
inputs cannot drift. It imports only numpy, the standard library and its two parts:
the spec (:mod:`workers.inference.spec`) and the hashing and character-class primitives
(:mod:`workers.inference.hashing`).

Output
======
``transform(items)`` returns ``{"word_ids": int32[B, max_word_ids],
"char_ids": int32[B, max_char_ids]}``. Id 0 is padding; real ids are
``1..word_buckets`` and ``1..char_buckets``, so the model's embedding tables
have ``buckets + 1`` rows with row 0 for padding. Each row holds the item's ids
in priority order, then zeros.

Algorithm (spec kind ``hashed-ngrams``, version 1)
==================================================
Any change below changes model inputs and needs a new spec version.

1. **Field texts.** Each field is read as ``normalize(raw[:4 * limit])[:limit]``
   with trailing spaces removed (:func:`workers.inference.textnorm.normalize`; ``limit``
   is ``spec.fields.<field>`` in characters; a limit of 0 turns the field off).
   Attributes: every pair becomes ``normalize(key) + "=" + normalize(value)``
   (each raw side cut at ``4 * limit`` first); pairs with an empty side are
   dropped, duplicates removed, the rest sorted by code point; walking that
   list, a pair is kept if its length fits in what is left of
   ``fields.attributes`` characters, else skipped.
2. **Character classes.** A code point is *run* (scripts written without spaces
   between words) if it is a letter, mark or number (Unicode L*, M*, N*) in one
   of the blocks of ``RUN_RANGES`` (Han, kana, bopomofo, Thai, Lao, Myanmar,
   Khmer), or any code point in U+20000..U+3FFFF; *word* if it is another
   letter, mark or number below U+20000; *separator* otherwise (so every code
   point from U+40000 up).
3. **Tokens.** Title, brand and description are split into maximal runs of
   code points of one class, run or word; separators only separate. So
   ``"erke/鸿星尔克 跑步鞋"`` gives ``erke``, ``鸿星尔克``, ``跑步鞋``, and
   ``"500ml"`` stays one token. Every kept attribute pair is one token, spaces
   included (``"colour=navy blue"``).
4. **Hash.** ``H(seed, s)`` over a string ``s`` of code points ``c_0..c_{L-1}``::

       h = seed
       for c in s: h = (h * P + c) mod 2**64        # P = 0x9E3779B97F4A7C15
       return fmix64(h)

   with murmur3's finalizer ``fmix64(h)``: ``h ^= h >> 33;
   h = h * 0xFF51AFD7ED558CCD mod 2**64; h ^= h >> 33;
   h = h * 0xC4CEB9FE1A85EC53 mod 2**64; h ^= h >> 33``. An id is
   ``H(seed, s) % buckets + 1``. The seed of each (table, field) is
   ``H(spec.seed, table + ":" + field)`` with table ``word`` or ``char`` and
   field ``title``, ``brand``, ``attributes`` or ``description``. So ``apple``
   in the brand and ``apple`` in the title get different ids.
5. **Word ids.** For ``n`` in ``word_ngrams``, every ``n`` consecutive tokens of
   one field text, joined by one space (``"w1 w2"``), hashed with the field's
   word seed into ``word_buckets``. Attribute tokens form no n-grams with
   ``n > 1``. Order: fields by priority title, brand, attributes, description;
   within a field by the position of the n-gram's last token, then by ``n``.
6. **Char ids.** For each title, brand and description token ``w``: a *word*
   token is padded with one space on each side (``" w "``) and contributes all
   its substrings of length ``n`` for ``n`` in ``char_ngrams``; a *run* token
   (not padded) contributes its substrings of length ``n`` for ``n`` in
   ``run_char_ngrams``. Substrings of length 1 that are a padding space are
   skipped. Each is hashed with the field's char seed into ``char_buckets``.
   Order: fields by priority, then tokens, then start offset, then ``n``.
7. **Truncation.** Each list is cut to ``max_word_ids`` / ``max_char_ids``: the
   highest-priority ids (the title first, from its start) are kept.

The implementation is vectorized over the whole batch: one code point array
for the batch, prefix sums of ``c_k * P**-k`` turn every hash into a few array
operations, and the ids are scattered into the padded matrices. The result for
an item does not depend on the rest of the batch.

:meth:`Featurizer.content_hash` hashes exactly the field texts of step 1, so it
is the cache key of a result for a given model.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Final, NamedTuple

import numpy as np
import numpy.typing as npt

from workers.core.product import ProductText
from workers.inference.hashing import (
    ATOM,
    I32,
    I64,
    RUN,
    SEP,
    TABLE_SIZE,
    WORD,
    P,
    bucket,
    class_table,
    field_seed,
    fmix64,
    prefix_hashes,
    ragged_arange,
    scatter,
)
from workers.inference.spec import FIELDS, FeaturizerSpec
from workers.inference.textnorm import normalize

__all__ = ["Featurizer", "PreparedText"]

_PAD: Final = 0x20  # the space around word tokens and between the tokens of a word n-gram
_ATTRS: Final = 2  # index of "attributes" in FIELDS
_RAW_FACTOR: Final = 4


class PreparedText(NamedTuple):
    """The normalized, truncated field texts the model reads (step 1 of the algorithm)."""

    title: str
    brand: str
    attributes: tuple[str, ...]
    description: str

    def content_hash(self) -> str:
        """32 hex digits: BLAKE2b-128 (person ``prodcat-fz-v1``) of the UTF-8 of
        ``title RS brand RS attr1 US attr2 ... RS description`` (RS = U+001E,
        US = U+001F; normalized text never contains either). Equal model input,
        equal hash."""
        payload = "\x1e".join(
            (self.title, self.brand, "\x1f".join(self.attributes), self.description)
        )
        return hashlib.blake2b(
            payload.encode("utf-8"), digest_size=16, person=b"prodcat-fz-v1"
        ).hexdigest()


# --------------------------------------------------------------------------- featurizer


class _Tokens(NamedTuple):
    """The tokens of a batch, in buffer order (item, field priority, position)."""

    start: I64  # first code point in the batch buffer
    end: I64  # one past the last
    seg: I64  # segment: 4 * item + field
    cls: npt.NDArray[np.uint8]  # WORD, RUN or ATOM

    @property
    def length(self) -> I64:
        return self.end - self.start

    @property
    def field(self) -> I64:
        return self.seg % 4

    @property
    def item(self) -> I64:
        return self.seg // 4


class Featurizer:
    """Turns :class:`ProductText` batches into padded id matrices (see the module docstring).

    Thread-safe: it holds no per-call state.
    """

    def __init__(self, spec: FeaturizerSpec | None = None) -> None:
        self.spec = spec if spec is not None else FeaturizerSpec()
        s = self.spec
        self._table = class_table()
        self._word_seeds = np.array([field_seed(s.seed, "word", f) for f in FIELDS], np.uint64)
        self._char_seeds = np.array([field_seed(s.seed, "char", f) for f in FIELDS], np.uint64)
        self._char_sizes = tuple(sorted(set(s.char_ngrams) | set(s.run_char_ngrams)))

    # ---------------------------------------------------------------- step 1

    def prepare(self, item: ProductText) -> PreparedText:
        """The normalized, truncated texts of one item (step 1 of the algorithm)."""
        limits = self.spec.fields
        return PreparedText(
            _field_text(item.title, limits.title),
            _field_text(item.brand, limits.brand),
            _attribute_texts(item.attributes, limits.attributes),
            _field_text(item.description, limits.description),
        )

    def content_hash(self, item: ProductText) -> str:
        """Hex digest of what the model reads of ``item``: the result cache key for one model."""
        return self.prepare(item).content_hash()

    def content_hashes(self, items: Sequence[ProductText]) -> list[str]:
        """:meth:`content_hash` of each item."""
        prepare = self.prepare
        return [prepare(item).content_hash() for item in items]

    # ---------------------------------------------------------------- steps 2-7

    def transform(self, items: Sequence[ProductText]) -> dict[str, I32]:
        """``{"word_ids": int32[B, max_word_ids], "char_ids": int32[B, max_char_ids]}``."""
        prepare = self.prepare
        return self.transform_prepared([prepare(item) for item in items])

    def transform_prepared(self, items: Sequence[PreparedText]) -> dict[str, I32]:
        """:meth:`transform` for items already through :meth:`prepare`.

        Lets a worker normalize once, look the content hashes up in its cache and
        featurize only the misses.
        """
        spec = self.spec
        batch = len(items)
        # Four segments per item, in priority order, empty ones included:
        # NUL title NUL brand NUL attr1 NUL attr2 ... NUL description NUL next title ...
        texts = [""] * (4 * batch)
        texts[0::4] = [item.title for item in items]
        texts[1::4] = [item.brand for item in items]
        texts[2::4] = ["\x00".join(item.attributes) if item.attributes else "" for item in items]
        texts[3::4] = [item.description for item in items]
        buffer = "\x00" + "\x00".join(texts) + "\x00"
        cps = np.frombuffer(buffer.encode("utf-32-le"), dtype=np.uint32)
        cls = self._table[np.minimum(cps, TABLE_SIZE)]
        seg_len = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
        seg_start = np.cumsum(seg_len + 1) - seg_len  # first code point of each segment
        if any(texts[_ATTRS::4]):
            # each attribute pair is one token: mark its code points ATOM
            edges = np.zeros(len(cps) + 1, dtype=np.int8)
            np.add.at(edges, seg_start[_ATTRS::4], 1)
            np.add.at(edges, seg_start[_ATTRS::4] + seg_len[_ATTRS::4], -1)
            inside = np.cumsum(edges[:-1], dtype=np.int8).astype(np.bool_)
            cls[inside & (cps != 0)] = ATOM

        # Tokens: maximal runs of one class other than separator.
        change = cls[1:] != cls[:-1]
        start = np.flatnonzero(change & (cls[1:] != SEP)) + 1
        if len(start) == 0:
            return {
                "word_ids": np.zeros((batch, spec.max_word_ids), dtype=np.int32),
                "char_ids": np.zeros((batch, spec.max_char_ids), dtype=np.int32),
            }
        tokens = _Tokens(
            start=start,
            end=np.flatnonzero(change & (cls[:-1] != SEP)) + 1,
            seg=np.searchsorted(seg_start, start, side="right") - 1,
            cls=cls[start],
        )
        word_items, word_ids = self._word_ids(cps, tokens)
        char_items, char_ids = self._char_ids(cps, tokens)
        return {
            "word_ids": scatter(word_items, word_ids, batch, spec.max_word_ids),
            "char_ids": scatter(char_items, char_ids, batch, spec.max_char_ids),
        }

    def _word_ids(self, cps: npt.NDArray[np.uint32], tokens: _Tokens) -> tuple[I64, I32]:
        """(item, id) of every word n-gram, in priority order."""
        spec = self.spec
        n_tok = len(tokens.start)
        p_pos, prefix = prefix_hashes(cps.astype(np.uint64))
        start, end, length = tokens.start, tokens.end, tokens.length
        poly = (prefix[end] - prefix[start]) * p_pos[end - 1]
        p_len = p_pos[length]
        state = self._word_seeds[tokens.field] * p_len + poly  # Horner state after each token
        ids = np.zeros((n_tok, len(spec.word_ngrams)), dtype=np.int32)
        for n in range(1, max(spec.word_ngrams) + 1):
            if n > 1:
                # the n-gram ending at token j continues the (n-1)-gram ending at j-1
                prev = np.zeros(n_tok, dtype=np.uint64)
                prev[1:] = state[:-1]
                state = (prev * np.uint64(P) + np.uint64(_PAD)) * p_len + poly
            if n not in spec.word_ngrams:
                continue
            column = bucket(fmix64(state.copy()), spec.word_buckets)
            if n > 1:
                valid = np.zeros(n_tok, dtype=np.bool_)
                valid[n - 1 :] = tokens.seg[n - 1 :] == tokens.seg[: n_tok - n + 1]
                valid &= tokens.cls != ATOM
                column *= valid
            ids[:, spec.word_ngrams.index(n)] = column
        flat = ids.reshape(-1)
        nonzero = np.flatnonzero(flat)
        return tokens.item[nonzero // ids.shape[1]], flat[nonzero]

    def _char_ids(self, cps: npt.NDArray[np.uint32], tokens: _Tokens) -> tuple[I64, I32]:
        """(item, id) of every char n-gram, in priority order."""
        spec = self.spec
        keep = np.zeros(len(tokens.start), dtype=np.bool_)
        if spec.char_ngrams:
            keep |= tokens.cls == WORD
        if spec.run_char_ngrams:
            keep |= tokens.cls == RUN
        if not keep.any():
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int32)
        # Windows: word tokens padded with a space on each side, run tokens as they are.
        is_word_win = tokens.cls[keep] == WORD
        pads = is_word_win.astype(np.int64)
        starts, lens = tokens.start[keep], tokens.length[keep]
        win_len = lens + 2 * pads
        win_end = np.cumsum(win_len)
        win_start = win_end - win_len
        total = int(win_end[-1])

        # The windows side by side: " w1 ", "鸿星尔克", " w2 ", ...
        inner = ragged_arange(lens)
        chars = np.full(total, _PAD, dtype=np.uint64)
        chars[np.repeat(win_start + pads, lens) + inner] = cps[np.repeat(starts, lens) + inner]
        win_of = np.repeat(np.arange(len(win_len), dtype=np.int64), win_len)
        position = np.arange(total, dtype=np.int64)
        remaining = win_end[win_of] - position  # code points from here to the window's end
        is_word = is_word_win[win_of]
        is_pad = is_word & ((position == win_start[win_of]) | (remaining == 1))
        seed = self._char_seeds[tokens.field[keep]][win_of]
        p_pos, prefix = prefix_hashes(chars)

        # ids[p, k]: id of the n-gram of size _char_sizes[k] starting at p, or 0
        sizes = self._char_sizes
        ids = np.zeros((total, len(sizes)), dtype=np.int32)
        for k, n in enumerate(sizes):
            count = total - n + 1
            if count <= 0:
                continue
            state = prefix[n:] - prefix[:count]
            state *= p_pos[n - 1 : n - 1 + count]
            state += seed[:count] * p_pos[n]
            valid = remaining[:count] >= n
            if n not in spec.run_char_ngrams:
                valid &= is_word[:count]
            elif n not in spec.char_ngrams:
                valid &= ~is_word[:count]
            if n == 1:
                valid &= ~is_pad[:count]
            column = bucket(fmix64(state), spec.char_buckets)
            column *= valid
            ids[:count, k] = column
        flat = ids.reshape(-1)
        nonzero = np.flatnonzero(flat)
        item = tokens.item[keep]
        return item[win_of[nonzero // len(sizes)]], flat[nonzero]


def _field_text(raw: str, limit: int) -> str:
    if not raw or limit == 0:
        return ""
    text = normalize(raw[: _RAW_FACTOR * limit])
    if len(text) > limit:
        text = text[:limit].rstrip(" ")
    return text


_PAIRS: dict[tuple[str, str, int], str] = {}
"""Normalized ``key=value`` of raw attribute pairs seen recently ("" if either side is
empty): catalogs reuse a few keys and values (``gender``/``Men``, ``usage``/``Casual``),
and normalizing each pair cost about 0.8 µs. Only short pairs are kept (the table holds the
raw strings), and it is cleared when it holds :data:`_PAIRS_MAX`: a few MiB at most."""
_PAIRS_MAX: Final = 4096
_PAIRS_RAW_MAX: Final = 128


def _attribute_texts(attributes: Mapping[str, str], limit: int) -> tuple[str, ...]:
    if not attributes or limit == 0:
        return ()
    cut = _RAW_FACTOR * limit
    pairs = set()
    known = _PAIRS
    if len(known) > _PAIRS_MAX:
        known.clear()
    for key, value in attributes.items():
        raw = (key, value, cut)
        pair = known.get(raw)
        if pair is None:
            k, v = normalize(key[:cut]), normalize(value[:cut])
            pair = f"{k}={v}" if k and v else ""
            if len(key) + len(value) <= _PAIRS_RAW_MAX:
                known[raw] = pair
        if pair:
            pairs.add(pair)
    kept: list[str] = []
    budget = limit
    for pair in sorted(pairs):
        if len(pair) <= budget:
            kept.append(pair)
            budget -= len(pair)
    return tuple(kept)
