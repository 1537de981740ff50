"""The hashing and character-class primitives of the featurizer, vectorized with numpy.

Steps 2 and 4 of the algorithm in :mod:`workers.inference.featurizer`: the class of every
code point (*word*, *run* or separator), the polynomial string hash with murmur3's
finalizer, and the array helpers that turn per-token hashes into padded id matrices.
Changing any of it changes model inputs (a new spec version).
"""

from __future__ import annotations

import functools
import threading
import unicodedata
from typing import Final

import numpy as np
import numpy.typing as npt

U64 = npt.NDArray[np.uint64]
I64 = npt.NDArray[np.int64]
I32 = npt.NDArray[np.int32]

_MASK64: Final = (1 << 64) - 1
P: Final = 0x9E3779B97F4A7C15
_P_INV: Final = pow(P, -1, 1 << 64)
_FMIX1: Final = np.uint64(0xFF51AFD7ED558CCD)
_FMIX2: Final = np.uint64(0xC4CEB9FE1A85EC53)
_SHIFT: Final = np.uint64(33)

SEP, WORD, RUN, ATOM = 0, 1, 2, 3
"""Classes of code points (ATOM: inside an attribute pair, which is one token)."""

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
TABLE_SIZE: Final = 0x40000  # code points >= this are separators


@functools.cache
def class_table() -> npt.NDArray[np.uint8]:
    """Class of every code point below U+40000, plus one separator entry for the rest."""
    table = np.zeros(TABLE_SIZE + 1, dtype=np.uint8)
    category = unicodedata.category
    alnum = np.fromiter(
        (category(chr(cp))[0] in "LMN" for cp in range(_RUN_PLANES[0])),
        dtype=np.bool_,
        count=_RUN_PLANES[0],
    )
    table[: _RUN_PLANES[0]][alnum] = WORD
    for lo, hi in RUN_RANGES:
        block = table[lo : hi + 1]
        block[block == WORD] = RUN
    table[_RUN_PLANES[0] : _RUN_PLANES[1] + 1] = RUN
    return table


def run_script_share(text: str) -> float:
    """Share of ``text``'s letters, marks and numbers that are *run* characters (scripts
    written without spaces: Chinese, Japanese, Thai...); 0.0 for text without any."""
    if not text:
        return 0.0
    table = class_table()
    codes = np.fromiter((min(ord(c), TABLE_SIZE) for c in text), dtype=np.int64, count=len(text))
    classes = table[codes]
    letters = int(np.count_nonzero(classes != SEP))
    return float(np.count_nonzero(classes == RUN)) / letters if letters else 0.0


def horner(seed: int, text: str) -> int:
    h = seed
    for ch in text:
        h = (h * P + ord(ch)) & _MASK64
    return h


def fmix64_int(h: int) -> int:
    h ^= h >> 33
    h = (h * 0xFF51AFD7ED558CCD) & _MASK64
    h ^= h >> 33
    h = (h * 0xC4CEB9FE1A85EC53) & _MASK64
    return h ^ (h >> 33)


def field_seed(seed: int, table: str, field: str) -> int:
    return fmix64_int(horner(seed, f"{table}:{field}"))


def fmix64(h: U64) -> U64:
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
            pos = np.full(size, P, dtype=np.uint64)
            neg = np.full(size, _P_INV, dtype=np.uint64)
            pos[0] = neg[0] = 1
            np.multiply.accumulate(pos, out=pos)
            np.multiply.accumulate(neg, out=neg)
            self._arrays = arrays = (pos, neg)
        return arrays


POWERS: Final = _Powers()


def bucket(h: U64, buckets: int) -> I32:
    """``h % buckets + 1`` as int32 (a mask when ``buckets`` is a power of two)."""
    if buckets & (buckets - 1) == 0:
        h &= np.uint64(buckets - 1)
    else:
        h %= np.uint64(buckets)
    out = h.astype(np.int32)
    out += 1
    return out


def ragged_arange(lengths: I64) -> I64:
    """``concat([arange(n) for n in lengths])``."""
    total = int(lengths.sum())
    starts = np.cumsum(lengths) - lengths
    return np.arange(total, dtype=np.int64) - np.repeat(starts, lengths)


def scatter(items: I64, ids: I32, batch: int, width: int) -> I32:
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


def prefix_hashes(values: U64) -> tuple[U64, U64]:
    """``(P**k for k, S)`` with ``S[i] = sum(values[k] * P**-k for k < i)`` mod 2**64.

    The Horner hash of ``values[a:b]`` from state 0 is ``(S[b] - S[a]) * P**(b-1)``.
    """
    n = len(values)
    p_pos, p_neg = POWERS.ensure(n + 1)
    prefix = np.empty(n + 1, dtype=np.uint64)
    prefix[0] = 0
    np.cumsum(values * p_neg[:n], out=prefix[1:])
    return p_pos, prefix
