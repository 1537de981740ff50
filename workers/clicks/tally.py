"""A query's decayed category tally, and when it makes a training label (pure logic).

Each click, add-to-cart or purchase on a search result adds its action's weight to the
clicked product's category in the tally of the normalized query. Weights decay
exponentially with a half-life, by *event time*: a tally is a sum of
``weight * 0.5 ** ((now - t) / half_life)`` kept as one number per category plus the time
it refers to, so replaying the same clicks gives the same tally. Only the
``max_categories`` heaviest categories are kept.

A tally makes a label when its total decayed weight reaches ``min_weight`` and the heaviest
category holds at least ``min_share`` of it: a query most shoppers resolve in one category.
The label is that category; it changes when another category takes over, and is withdrawn
when no category qualifies any more.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Final

import msgspec

from workers.core.categories import PATH_SEPARATOR
from workers.core.settings import ClicksSettings
from workers.inference.textnorm import normalize

__all__ = ["QueryTally", "action_weight", "add_click", "label_of", "normalize_query", "query_id"]

_MAX_ID: Final = 128
_PREFIX: Final = "query:"


def normalize_query(text: str) -> str:
    """The tally key of a query: NFKC, case folded, markup and invisibles removed, one
    space between words (the featurizer's own normalization, so "Toor  DAL" is "toor dal")."""
    return normalize(text)


def query_id(normalized: str) -> str:
    """The ``product_id`` of a query's label: ``query:<normalized query>``, or, when that
    is longer than an id may be, ``query:`` and a hash of it."""
    candidate = _PREFIX + normalized
    if len(candidate) <= _MAX_ID:
        return candidate
    return _PREFIX + "sha256:" + hashlib.sha256(normalized.encode()).hexdigest()


def action_weight(action: str, settings: ClicksSettings) -> float:
    return {
        "click": settings.click_weight,
        "add_to_cart": settings.cart_weight,
        "purchase": settings.purchase_weight,
    }[action]


class QueryTally(msgspec.Struct, frozen=True, array_like=True):
    """One query's tally (a table value): category path (``"A > B"``) to decayed weight,
    as of ``at`` (epoch seconds), the query as last typed, and the label in effect."""

    weights: dict[str, float]
    at: float
    shown: str
    label: str | None = None


_ENCODER: Final = msgspec.msgpack.Encoder()
_DECODER: Final = msgspec.msgpack.Decoder(QueryTally)


def encode_tally(tally: QueryTally) -> bytes:
    return _ENCODER.encode(tally)


def decode_tally(raw: bytes | None) -> QueryTally | None:
    return None if raw is None else _DECODER.decode(raw)


def _decayed(weights: Mapping[str, float], factor: float) -> dict[str, float]:
    return {path: w * factor for path, w in weights.items()}


def add_click(
    tally: QueryTally | None,
    *,
    path: tuple[str, ...],
    weight: float,
    at: float,
    shown: str,
    settings: ClicksSettings,
) -> QueryTally:
    """``tally`` with one action added at event time ``at`` (an event older than the tally
    is decayed to the tally's time instead, so late events still count, less)."""
    key = PATH_SEPARATOR.join(path)
    if tally is None:
        return QueryTally({key: weight}, at, shown)
    half_life = settings.half_life_s
    if at >= tally.at:
        weights = _decayed(tally.weights, 0.5 ** ((at - tally.at) / half_life))
        now = at
    else:
        weights = dict(tally.weights)
        weight *= 0.5 ** ((tally.at - at) / half_life)
        now = tally.at
    weights[key] = weights.get(key, 0.0) + weight
    if len(weights) > settings.max_categories:
        kept = sorted(weights.items(), key=lambda kv: -kv[1])[: settings.max_categories]
        weights = dict(kept)
    return QueryTally(weights, now, shown, tally.label)


def label_of(tally: QueryTally, settings: ClicksSettings) -> tuple[str, ...] | None:
    """The category the tally makes a label of, or None (too little weight, or no clear
    majority)."""
    if not tally.weights:
        return None
    total = sum(tally.weights.values())
    path, top = max(tally.weights.items(), key=lambda kv: (kv[1], kv[0]))
    # 0.1% slack: three clicks seconds apart have decayed a hair below 3
    if total < settings.min_weight * 0.999 or top < settings.min_share * total:
        return None
    return tuple(path.split(PATH_SEPARATOR))
