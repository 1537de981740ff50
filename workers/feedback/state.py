"""What the feedback app remembers per product, as compact msgspec values in faust tables.

The ``products`` table maps ``product_id`` (UTF-8 bytes) to a :class:`ProductState`
encoded as JSON (:func:`encode_state` / :func:`decode_state`). Faust backs the table with
its changelog topic, so the state comes back after a restart or a rebalance.

A state is made from three streams, all keyed by ``product_id`` and co-partitioned:

* ``product.created`` / ``product.updated``: the product's text (what a training label
  needs) and its seller (for the merchant trust rule);
* ``product.categorized`` from the model (``source`` ``model`` or ``cache``): the
  prediction people see, which feedback confirms or corrects;
* ``category.feedback``: the votes (every feedback event, newest last, bounded) and the
  override in effect. Feedback that arrives before any product or categorized event of its
  product is *parked* in ``pending`` (see :mod:`workers.feedback.parking`).
"""

from __future__ import annotations

from typing import Final

import msgspec

from workers.core.events import FeedbackEvent, ProductEvent

__all__ = [
    "MAX_PARKED",
    "MAX_VOTES",
    "OverrideState",
    "ParkedFeedback",
    "Prediction",
    "ProductState",
    "StoredText",
    "Vote",
    "actor_of",
    "decode_state",
    "encode_state",
    "text_of",
]

MAX_VOTES: Final = 50
"""Feedback events kept per product (the oldest are dropped first)."""

MAX_PARKED: Final = 20
"""Feedback events parked per unknown product; more are dead-lettered at once."""


class StoredText(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """The fields the model reads, from the product's latest created/updated event."""

    title: str
    brand: str = ""
    description: str = ""
    attributes: dict[str, str] = {}


class Prediction(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """The model's latest answer for the product, as shown to people."""

    model_version: str
    category_path: tuple[str, ...]
    at: float
    """``classified_at`` of the categorized event, epoch seconds."""
    corrected: bool = False
    """A correction already counted against this prediction (counted once)."""


class OverrideState(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """The override in effect: the answer the classify worker gives instead of the model's."""

    category_path: tuple[str, ...]
    source: str
    trusted: bool
    at: float
    """``occurred_at`` of the deciding feedback, epoch seconds."""
    feedback_event_id: str
    shown: tuple[int, int] | None = None
    """(partition, offset) in ``product.categorized`` of the latest ``source: override``
    event the app published for it: a model answer read at a later offset of that
    partition was given without the override (see ``FeedbackHandler._on_categorized``)."""

    def shown_before(self, partition: int, offset: int) -> bool:
        """Whether a categorized event at (``partition``, ``offset``) comes after the latest
        answer with this override that the app knows of (or it knows of none there)."""
        shown = self.shown
        return shown is None or shown[0] != partition or offset > shown[1]


class Vote(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One feedback event as remembered: who said what, how strongly, when."""

    event_id: str
    source: str
    actor: str
    action: str
    category_path: tuple[str, ...] | None
    weight: float
    at: float
    trusted: bool


class ParkedFeedback(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A feedback message for a product not seen yet, kept as read (for its dead letter)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()
    parked_at: float
    """When the app parked it, epoch seconds (the grace period runs from here)."""


class ProductState(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """Everything the app knows about one product."""

    text: StoredText | None = None
    seller_id: str | None = None
    input_hash: str | None = None
    prediction: Prediction | None = None
    override: OverrideState | None = None
    votes: tuple[Vote, ...] = ()
    pending: tuple[ParkedFeedback, ...] = ()
    """Parked feedback, oldest first: non-empty only while the product is unknown."""
    partition: int | None = None
    """The input partition the state was last written from (the table partition the key
    belongs to; None in states written before it was recorded)."""

    def known(self) -> bool:
        """Whether a product or categorized event (or applied feedback) was seen for it."""
        return (
            self.text is not None
            or self.input_hash is not None
            or self.prediction is not None
            or self.override is not None
            or bool(self.votes)
        )

    def seen(self, event_id: str) -> bool:
        return any(v.event_id == event_id for v in self.votes)


_ENCODER: Final = msgspec.json.Encoder()
_DECODER: Final = msgspec.json.Decoder(ProductState)


def encode_state(state: ProductState) -> bytes:
    return _ENCODER.encode(state)


def decode_state(raw: bytes | None) -> ProductState | None:
    """The stored state, or None for a missing (or unreadable) value."""
    if not raw:
        return None
    try:
        return _DECODER.decode(raw)
    except msgspec.DecodeError:
        return None


def text_of(event: ProductEvent) -> StoredText:
    return StoredText(
        title=event.title,
        brand=event.brand,
        description=event.description,
        attributes=dict(event.attributes),
    )


def actor_of(event: FeedbackEvent) -> str:
    """Who voted: the actor id, else the merchant, else the event itself (anonymous)."""
    if event.actor_id:
        return f"{event.source}:{event.actor_id}"
    if event.source == "merchant" and event.seller_id:
        return f"merchant:{event.seller_id}"
    return f"anonymous:{event.event_id}"
