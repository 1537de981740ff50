"""Product text -> hashed word and character n-gram ids, for training and serving alike.

This module is the contract between the offline TensorFlow training and the
onnxruntime classify worker: both call :meth:`Featurizer.transform` with the
:class:`FeaturizerSpec` saved in the model bundle, so their inputs cannot drift.
It imports only numpy and the standard library.

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

import dataclasses
import functools
import hashlib
import threading
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final, NamedTuple, Protocol

import numpy as np
import numpy.typing as npt

from workers.core.errors import BundleError
from workers.inference.textnorm import normalize

__all__ = [
    "KIND",
    "RUN_RANGES",
    "SUPPORTED",
    "VERSION",
    "Featurizer",
    "FeaturizerSpec",
    "FieldLimits",
    "PreparedText",
    "ProductText",
]

KIND: Final = "hashed-ngrams"
VERSION: Final = 1
SUPPORTED: Final[frozenset[tuple[str, int]]] = frozenset({(KIND, VERSION)})

U64 = npt.NDArray[np.uint64]
I64 = npt.NDArray[np.int64]
I32 = npt.NDArray[np.int32]

_MASK64: Final = (1 << 64) - 1
_P: Final = 0x9E3779B97F4A7C15
_P_INV: Final = pow(_P, -1, 1 << 64)
_FMIX1: Final = np.uint64(0xFF51AFD7ED558CCD)
_FMIX2: Final = np.uint64(0xC4CEB9FE1A85EC53)
_SHIFT: Final = np.uint64(33)
_PAD: Final = 0x20  # the space around word tokens and between the tokens of a word n-gram

_FIELDS: Final = ("title", "brand", "attributes", "description")  # in priority order
_ATTRS: Final = 2  # index of "attributes"

_SEP, _WORD, _RUN, _ATOM = 0, 1, 2, 3
_RAW_FACTOR: Final = 4

#: Blocks whose letters, marks and numbers are *run* characters (inclusive ranges).
RUN_RANGES: Final[tuple[tuple[int, int], ...]] = (
    (0x0E00, 0x0E7F),  # Thai
    (0x0E80, 0x0EFF),  # Lao
    (0x1000, 0x109F),  # Myanmar
    (0x1780, 0x17FF),  # Khmer
    (0x19E0, 0x19FF),  # Khmer symbols
    (0x2E80, 0x2FDF),  # CJK radicals, Kangxi radicals
    (0x3005, 0x3007),  # 々 〆 〇
    (0x3021, 0x3029),  # Hangzhou numerals
    (0x3031, 0x3035),  # kana repeat marks
    (0x3038, 0x303C),
    (0x3040, 0x30FF),  # Hiragana, Katakana
    (0x3100, 0x312F),  # Bopomofo
    (0x31A0, 0x31FF),  # Bopomofo extended, Katakana phonetic extensions
    (0x3400, 0x4DBF),  # CJK extension A
    (0x4E00, 0x9FFF),  # CJK unified ideographs
    (0xA9E0, 0xA9FF),  # Myanmar extended-B
    (0xAA60, 0xAA7F),  # Myanmar extended-A
    (0xF900, 0xFAFF),  # CJK compatibility ideographs
    (0x1B000, 0x1B16F),  # Kana supplement and extended-A
)
_RUN_PLANES: Final = (0x20000, 0x3FFFF)  # CJK extension B and later: all run
_TABLE_SIZE: Final = 0x40000  # code points >= this are separators


@functools.cache
def _class_table() -> npt.NDArray[np.uint8]:
    """Class of every code point below U+40000, plus one separator entry for the rest."""
    table = np.zeros(_TABLE_SIZE + 1, dtype=np.uint8)
    category = unicodedata.category
    alnum = np.fromiter(
        (category(chr(cp))[0] in "LMN" for cp in range(_RUN_PLANES[0])),
        dtype=np.bool_,
        count=_RUN_PLANES[0],
    )
    table[: _RUN_PLANES[0]][alnum] = _WORD
    for lo, hi in RUN_RANGES:
        block = table[lo : hi + 1]
        block[block == _WORD] = _RUN
    table[_RUN_PLANES[0] : _RUN_PLANES[1] + 1] = _RUN
    return table


# --------------------------------------------------------------------------- spec


@dataclass(frozen=True, slots=True)
class FieldLimits:
    """How many characters of each normalized field the featurizer reads (0 = ignore it).

    Train with every field set that the serving events will carry, or set it to 0
    here: ids of a field absent from training hit untrained embedding rows.
    """

    title: int = 200
    brand: int = 64
    attributes: int = 256
    description: int = 0

    def __post_init__(self) -> None:
        for name in _FIELDS:
            value = getattr(self, name)
            if type(value) is not int or not 0 <= value <= 100_000:
                raise ValueError(f"fields.{name} must be an integer in 0..100000, got {value!r}")
        if self.title < 1:
            raise ValueError("fields.title must be at least 1")

    def to_dict(self) -> dict[str, int]:
        return {name: int(getattr(self, name)) for name in _FIELDS}


def _check_ngrams(name: str, value: tuple[int, ...], allow_empty: bool) -> None:
    if type(value) is not tuple or not all(type(n) is int for n in value):
        raise ValueError(f"{name} must be a tuple of integers, got {value!r}")
    if not value and not allow_empty:
        raise ValueError(f"{name} must not be empty")
    if list(value) != sorted(set(value)) or any(not 1 <= n <= 16 for n in value):
        raise ValueError(f"{name} must be strictly increasing integers in 1..16, got {value!r}")


@dataclass(frozen=True, slots=True)
class FeaturizerSpec:
    """Everything that decides the model's input ids. Saved in every model bundle.

    The defaults were chosen on the real catalogs in ``shared/data`` (bigbasket
    product+brand, myntra names, cn_ecommerce titles), with a linear SVM over
    the ids as a quick probe of how informative they are:

    * ``word_ngrams=(1, 2)``: words and word pairs.
    * ``char_ngrams=(3, 4, 5)``: fastText-style subwords of space-padded words
      (plurals, typos, compounds, unseen brands). On bigbasket, ``(3, 4)``,
      ``(2..5)`` and ``(3..6)`` scored within 0.002 weighted F1 of it; ``(2..5)``
      costs 50% more ids.
    * ``run_char_ngrams=(1, 2, 3)``: Chinese, Japanese and Thai text has no
      spaces; single characters, bigrams and trigrams of each run replace a word
      segmenter. On Chinese titles they lift weighted F1 from 0.51 (words only)
      to 0.80; dropping the trigrams costs 0.005, padding the runs gains 0.001
      for 24% more ids.
    * ``word_buckets = char_buckets = 2**18``: 30k Chinese titles already have
      0.2M distinct word and 0.4M char n-grams. There, ``2**16`` buckets scored
      the same as ``2**18`` (0.818 vs 0.815), so collisions are cheap and
      ``2**18`` leaves room for bigger catalogs; a bundle that must be small can
      go lower (each table holds ``(buckets + 1) * dim`` floats).
    * ``max_word_ids=64``, ``max_char_ids=256``: all ids of at least 99.6% of the
      rows of every catalog (100% of bigbasket words and myntra); longer rows
      lose their lowest-priority ids.
    * ``fields``: title 200 characters (99.9% of titles are shorter), brand 64,
      attributes 256, description 0 (off: no catalog here has descriptions, and
      a field the model never saw in training would only add untrained ids).
    """

    kind: str = KIND
    version: int = VERSION
    word_buckets: int = 2**18
    char_buckets: int = 2**18
    word_ngrams: tuple[int, ...] = (1, 2)
    char_ngrams: tuple[int, ...] = (3, 4, 5)
    run_char_ngrams: tuple[int, ...] = (1, 2, 3)
    max_word_ids: int = 64
    max_char_ids: int = 256
    fields: FieldLimits = FieldLimits()
    seed: int = 0

    def __post_init__(self) -> None:
        if (self.kind, self.version) not in SUPPORTED:
            raise ValueError(_unsupported(self.kind, self.version))
        for name in ("word_buckets", "char_buckets"):
            value = getattr(self, name)
            if type(value) is not int or not 1 <= value <= 2**31 - 2:
                raise ValueError(f"{name} must be an integer in 1..2**31-2, got {value!r}")
        for name in ("max_word_ids", "max_char_ids"):
            value = getattr(self, name)
            if type(value) is not int or not 1 <= value <= 65536:
                raise ValueError(f"{name} must be an integer in 1..65536, got {value!r}")
        _check_ngrams("word_ngrams", self.word_ngrams, allow_empty=False)
        _check_ngrams("char_ngrams", self.char_ngrams, allow_empty=True)
        _check_ngrams("run_char_ngrams", self.run_char_ngrams, allow_empty=True)
        if not isinstance(self.fields, FieldLimits):
            raise ValueError(f"fields must be FieldLimits, got {type(self.fields).__name__}")
        if type(self.seed) is not int or not 0 <= self.seed <= _MASK64:
            raise ValueError(f"seed must be an integer in 0..2**64-1, got {self.seed!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form, for the model bundle's manifest."""
        return {
            "kind": self.kind,
            "version": self.version,
            "word_buckets": self.word_buckets,
            "char_buckets": self.char_buckets,
            "word_ngrams": list(self.word_ngrams),
            "char_ngrams": list(self.char_ngrams),
            "run_char_ngrams": list(self.run_char_ngrams),
            "max_word_ids": self.max_word_ids,
            "max_char_ids": self.max_char_ids,
            "fields": self.fields.to_dict(),
            "seed": self.seed,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeaturizerSpec:
        """Inverse of :meth:`to_dict`. Raises :class:`BundleError` on anything unexpected."""
        if not isinstance(data, Mapping):
            raise BundleError(f"featurizer spec must be a JSON object, got {type(data).__name__}")
        kind, version = data.get("kind"), data.get("version")
        if (
            not isinstance(kind, str)
            or type(version) is not int
            or (kind, version) not in SUPPORTED
        ):
            raise BundleError(_unsupported(kind, version))
        expected = set(_SPEC_KEYS)
        unknown, missing = set(data) - expected, expected - set(data)
        if unknown or missing:
            parts = []
            if unknown:
                parts.append(f"unknown key(s) {sorted(map(str, unknown))}")
            if missing:
                parts.append(f"missing key(s) {sorted(missing)}")
            raise BundleError(
                f"featurizer spec {kind}/{version}: {' and '.join(parts)}; "
                "the bundle was written by another prodcat version or edited by hand"
            )
        fields = data["fields"]
        if not isinstance(fields, Mapping) or set(fields) != set(_FIELDS):
            raise BundleError(
                f"featurizer spec: 'fields' must be an object with exactly the keys "
                f"{list(_FIELDS)}, got {fields!r}"
            )
        try:
            return cls(
                kind=kind,
                version=version,
                word_buckets=data["word_buckets"],
                char_buckets=data["char_buckets"],
                word_ngrams=_as_tuple(data["word_ngrams"]),
                char_ngrams=_as_tuple(data["char_ngrams"]),
                run_char_ngrams=_as_tuple(data["run_char_ngrams"]),
                max_word_ids=data["max_word_ids"],
                max_char_ids=data["max_char_ids"],
                fields=FieldLimits(**{name: fields[name] for name in _FIELDS}),
                seed=data["seed"],
            )
        except (TypeError, ValueError) as exc:
            raise BundleError(f"featurizer spec is invalid: {exc}") from exc


_SPEC_KEYS: Final = tuple(f.name for f in dataclasses.fields(FeaturizerSpec))


def _as_tuple(value: object) -> tuple[Any, ...]:
    if isinstance(value, list | tuple):
        return tuple(value)
    raise TypeError(f"expected a list of integers, got {value!r}")


def _unsupported(kind: object, version: object) -> str:
    supported = ", ".join(f"{k}/{v}" for k, v in sorted(SUPPORTED))
    return (
        f"featurizer spec kind {kind!r} version {version!r} is not supported by this prodcat "
        f"(supports {supported}); retrain or upgrade prodcat"
    )


# --------------------------------------------------------------------------- inputs

_EMPTY: Final[Mapping[str, str]] = MappingProxyType({})


class _HasText(Protocol):
    """Anything with a product's text fields (a product event, a label, a catalog row)."""

    @property
    def title(self) -> str: ...
    @property
    def brand(self) -> str: ...
    @property
    def description(self) -> str: ...
    @property
    def attributes(self) -> Mapping[str, str]: ...


class ProductText(NamedTuple):
    """The raw text fields of one product, as they arrive in an event."""

    title: str
    brand: str = ""
    description: str = ""
    attributes: Mapping[str, str] = _EMPTY

    @classmethod
    def of(cls, source: _HasText) -> ProductText:
        """The text fields of ``source`` (e.g. a ``ProductEvent``)."""
        return cls(source.title, source.brand, source.description, source.attributes)


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


# --------------------------------------------------------------------------- hashing


def _horner(seed: int, text: str) -> int:
    h = seed
    for ch in text:
        h = (h * _P + ord(ch)) & _MASK64
    return h


def _fmix64_int(h: int) -> int:
    h ^= h >> 33
    h = (h * 0xFF51AFD7ED558CCD) & _MASK64
    h ^= h >> 33
    h = (h * 0xC4CEB9FE1A85EC53) & _MASK64
    return h ^ (h >> 33)


def _field_seed(seed: int, table: str, field: str) -> int:
    return _fmix64_int(_horner(seed, f"{table}:{field}"))


def _fmix64(h: U64) -> U64:
    """murmur3 fmix64, in place."""
    h ^= h >> _SHIFT
    h *= _FMIX1
    h ^= h >> _SHIFT
    h *= _FMIX2
    h ^= h >> _SHIFT
    return h


class _Powers:
    """``P**k`` and ``P**-k`` mod 2**64 for k < n, grown on demand, shared by all featurizers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        one = np.ones(1, dtype=np.uint64)
        self._arrays: tuple[U64, U64] = (one, one)

    def ensure(self, n: int) -> tuple[U64, U64]:
        arrays = self._arrays  # one read: the pair is always consistent
        if len(arrays[0]) >= n:
            return arrays
        with self._lock:
            size = max(n, 2 * len(self._arrays[0]), 4096)
            pos = np.full(size, _P, dtype=np.uint64)
            neg = np.full(size, _P_INV, dtype=np.uint64)
            pos[0] = neg[0] = 1
            np.multiply.accumulate(pos, out=pos)
            np.multiply.accumulate(neg, out=neg)
            self._arrays = arrays = (pos, neg)
        return arrays


_POWERS: Final = _Powers()


def _bucket(h: U64, buckets: int) -> I32:
    """``h % buckets + 1`` as int32 (a mask when ``buckets`` is a power of two)."""
    if buckets & (buckets - 1) == 0:
        h &= np.uint64(buckets - 1)
    else:
        h %= np.uint64(buckets)
    out = h.astype(np.int32)
    out += 1
    return out


def _ragged_arange(lengths: I64) -> I64:
    """``concat([arange(n) for n in lengths])``."""
    total = int(lengths.sum())
    starts = np.cumsum(lengths) - lengths
    return np.arange(total, dtype=np.int64) - np.repeat(starts, lengths)


def _scatter(items: I64, ids: I32, batch: int, width: int) -> I32:
    """Rows of ``width`` ids per item (items sorted), in order, zero padded, truncated."""
    out = np.zeros((batch, width), dtype=np.int32)
    if len(ids) == 0:
        return out
    counts = np.bincount(items, minlength=batch)
    first = np.cumsum(counts) - counts
    at = np.arange(len(ids), dtype=np.int64)
    at -= first[items]  # rank of each id within its item
    if int(counts.max()) <= width:  # nothing to truncate (almost always)
        at += items * width
        out.reshape(-1)[at] = ids
        return out
    keep = at < width
    out.reshape(-1)[items[keep] * width + at[keep]] = ids[keep]
    return out


# --------------------------------------------------------------------------- featurizer


class _Tokens(NamedTuple):
    """The tokens of a batch, in buffer order (item, field priority, position)."""

    start: I64  # first code point in the batch buffer
    end: I64  # one past the last
    seg: I64  # segment: 4 * item + field
    cls: npt.NDArray[np.uint8]  # _WORD, _RUN or _ATOM

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
        self._table = _class_table()
        self._word_seeds = np.array([_field_seed(s.seed, "word", f) for f in _FIELDS], np.uint64)
        self._char_seeds = np.array([_field_seed(s.seed, "char", f) for f in _FIELDS], np.uint64)
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
        cls = self._table[np.minimum(cps, _TABLE_SIZE)]
        seg_len = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
        seg_start = np.cumsum(seg_len + 1) - seg_len  # first code point of each segment
        if any(texts[_ATTRS::4]):
            # each attribute pair is one token: mark its code points ATOM
            edges = np.zeros(len(cps) + 1, dtype=np.int8)
            np.add.at(edges, seg_start[_ATTRS::4], 1)
            np.add.at(edges, seg_start[_ATTRS::4] + seg_len[_ATTRS::4], -1)
            inside = np.cumsum(edges[:-1], dtype=np.int8).astype(np.bool_)
            cls[inside & (cps != 0)] = _ATOM

        # Tokens: maximal runs of one class other than separator.
        change = cls[1:] != cls[:-1]
        start = np.flatnonzero(change & (cls[1:] != _SEP)) + 1
        if len(start) == 0:
            return {
                "word_ids": np.zeros((batch, spec.max_word_ids), dtype=np.int32),
                "char_ids": np.zeros((batch, spec.max_char_ids), dtype=np.int32),
            }
        tokens = _Tokens(
            start=start,
            end=np.flatnonzero(change & (cls[:-1] != _SEP)) + 1,
            seg=np.searchsorted(seg_start, start, side="right") - 1,
            cls=cls[start],
        )
        word_items, word_ids = self._word_ids(cps, tokens)
        char_items, char_ids = self._char_ids(cps, tokens)
        return {
            "word_ids": _scatter(word_items, word_ids, batch, spec.max_word_ids),
            "char_ids": _scatter(char_items, char_ids, batch, spec.max_char_ids),
        }

    def _word_ids(self, cps: npt.NDArray[np.uint32], tokens: _Tokens) -> tuple[I64, I32]:
        """(item, id) of every word n-gram, in priority order."""
        spec = self.spec
        n_tok = len(tokens.start)
        p_pos, prefix = _prefix_hashes(cps.astype(np.uint64))
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
                state = (prev * np.uint64(_P) + np.uint64(_PAD)) * p_len + poly
            if n not in spec.word_ngrams:
                continue
            column = _bucket(_fmix64(state.copy()), spec.word_buckets)
            if n > 1:
                valid = np.zeros(n_tok, dtype=np.bool_)
                valid[n - 1 :] = tokens.seg[n - 1 :] == tokens.seg[: n_tok - n + 1]
                valid &= tokens.cls != _ATOM
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
            keep |= tokens.cls == _WORD
        if spec.run_char_ngrams:
            keep |= tokens.cls == _RUN
        if not keep.any():
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int32)
        # Windows: word tokens padded with a space on each side, run tokens as they are.
        is_word_win = tokens.cls[keep] == _WORD
        pads = is_word_win.astype(np.int64)
        starts, lens = tokens.start[keep], tokens.length[keep]
        win_len = lens + 2 * pads
        win_end = np.cumsum(win_len)
        win_start = win_end - win_len
        total = int(win_end[-1])

        # The windows side by side: " w1 ", "鸿星尔克", " w2 ", ...
        inner = _ragged_arange(lens)
        chars = np.full(total, _PAD, dtype=np.uint64)
        chars[np.repeat(win_start + pads, lens) + inner] = cps[np.repeat(starts, lens) + inner]
        win_of = np.repeat(np.arange(len(win_len), dtype=np.int64), win_len)
        position = np.arange(total, dtype=np.int64)
        remaining = win_end[win_of] - position  # code points from here to the window's end
        is_word = is_word_win[win_of]
        is_pad = is_word & ((position == win_start[win_of]) | (remaining == 1))
        seed = self._char_seeds[tokens.field[keep]][win_of]
        p_pos, prefix = _prefix_hashes(chars)

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
            column = _bucket(_fmix64(state), spec.char_buckets)
            column *= valid
            ids[:count, k] = column
        flat = ids.reshape(-1)
        nonzero = np.flatnonzero(flat)
        item = tokens.item[keep]
        return item[win_of[nonzero // len(sizes)]], flat[nonzero]


def _prefix_hashes(values: U64) -> tuple[U64, U64]:
    """``(P**k for k, S)`` with ``S[i] = sum(values[k] * P**-k for k < i)`` mod 2**64.

    The Horner hash of ``values[a:b]`` from state 0 is ``(S[b] - S[a]) * P**(b-1)``.
    """
    n = len(values)
    p_pos, p_neg = _POWERS.ensure(n + 1)
    prefix = np.empty(n + 1, dtype=np.uint64)
    prefix[0] = 0
    np.cumsum(values * p_neg[:n], out=prefix[1:])
    return p_pos, prefix


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
