"""Who is trusted, when a correction becomes an override, and what is invalid. Pure code.

Rules (settings in :class:`workers.core.settings.FeedbackSettings`):

* **Trusted** feedback: a source listed in ``PRODCAT_FEEDBACK_TRUSTED_SOURCES`` (moderators
  by default), or a merchant correcting its *own* product (its ``seller_id`` equals the
  product's, from the product events) when ``PRODCAT_FEEDBACK_MERCHANT_OWN_PRODUCTS`` is on.
  A trusted ``correct`` becomes the override at once, unless a newer trusted override is
  already in effect (then it is *stale*: remembered, not applied).
* **Weak** feedback (users; merchants on other sellers' products) only votes. Each actor's
  latest ``correct`` counts with its ``weight`` (default 1). When one path's summed weight
  reaches ``PRODCAT_FEEDBACK_USER_THRESHOLD`` and is strictly ahead of every other path, it
  becomes the override, unless a trusted override is in effect (people outrank crowds).
* ``reject`` and ``accept`` never change the answer; they feed the quality figures. A
  trusted reject of the shown prediction counts as correcting it.
* A feedback event already remembered (same ``event_id``) has no effect: redelivery is safe.

Invalid feedback (:func:`validate`): an unknown product (the app has seen neither a product
event nor a prediction for it) and a category path that is not a node (leaf or ancestor) of
the live model's taxonomy, except in a *trusted* ``correct`` when
``PRODCAT_FEEDBACK_NEW_CATEGORIES`` is on: that is a new category (an override and a training
label now, a category of the model after the next retrain). Invalid feedback is
dead-lettered with the field named (an unknown product only after the grace period it is
parked for, see :mod:`workers.feedback.parking`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass
from typing import Literal

import msgspec

from workers.core.categories import CategoryPathError, format_path, parse_category_path
from workers.core.errors import InvalidEventError
from workers.core.events import FeedbackEvent
from workers.core.settings import FeedbackSettings
from workers.feedback.state import (
    MAX_VOTES,
    OverrideState,
    ProductState,
    Vote,
    actor_of,
)
from workers.inference.taxonomy import Taxonomy

__all__ = [
    "Effect",
    "Policy",
    "UnknownCategoryError",
    "UnknownProductError",
    "check_category",
    "decide",
    "is_trusted",
    "taxonomy_nodes",
    "validate",
]

Outcome = Literal["override", "vote", "stale", "duplicate", "confirmed", "rejected", "accepted"]


class UnknownProductError(InvalidEventError):
    """Feedback about a product the feedback app has never seen."""


class UnknownCategoryError(InvalidEventError):
    """Feedback naming a category path the live model does not know."""


@dataclass(frozen=True, slots=True)
class Policy:
    """The trust and agreement rules, from settings."""

    trusted_sources: frozenset[str] = frozenset({"moderator"})
    merchant_own_products: bool = True
    user_threshold: float = 3.0
    acceptance_window_s: float = 7 * 24 * 3600.0
    max_votes: int = MAX_VOTES
    new_categories: bool = True

    @classmethod
    def from_settings(cls, settings: FeedbackSettings) -> Policy:
        return cls(
            trusted_sources=frozenset(settings.trusted_sources),
            merchant_own_products=settings.merchant_own_products,
            user_threshold=float(settings.user_threshold),
            acceptance_window_s=float(settings.acceptance_window_s),
            new_categories=settings.new_categories,
        )

    def may_be_new(self, event: FeedbackEvent) -> bool:
        """Whether this feedback could be allowed a category the live model lacks (decided
        with the product's state by :func:`validate`; used before the product is known)."""
        return (
            self.new_categories
            and event.action == "correct"
            and (
                event.source in self.trusted_sources
                or (event.source == "merchant" and self.merchant_own_products)
            )
        )


@dataclass(frozen=True, slots=True)
class Effect:
    """What one feedback event does.

    ``state`` is the product's new state. ``override`` is set when a new override must be
    published (Redis, corrected categorized event, training label). ``corrected`` is the
    predicted path this feedback corrects within the acceptance window (count it once), with
    ``corrected_to`` the path it was corrected to (None for a reject). ``accepted`` is the
    predicted path an ``accept`` confirms.
    """

    outcome: Outcome
    state: ProductState
    override: OverrideState | None = None
    corrected: tuple[str, ...] | None = None
    corrected_to: tuple[str, ...] | None = None
    model_version: str | None = None
    accepted: tuple[str, ...] | None = None


def taxonomy_nodes(taxonomy: Taxonomy) -> frozenset[tuple[str, ...]]:
    """Every valid category path of a taxonomy: its leaves and all their ancestors."""
    return frozenset(leaf[:d] for leaf in taxonomy.leaves for d in range(1, len(leaf) + 1))


def _clean(path: list[str] | None) -> tuple[str, ...] | None:
    """An event's category path as a tuple (:func:`parse_category_path`), or None."""
    return None if path is None else parse_category_path(path)


def validate(
    event: FeedbackEvent,
    state: ProductState | None,
    nodes: Collection[tuple[str, ...]],
    *,
    model_version: str = "live",
    policy: Policy | None = None,
) -> None:
    """Raise :class:`UnknownProductError` or :class:`UnknownCategoryError` for invalid feedback.

    With ``policy``, a trusted correction may name a category the live model lacks (when
    ``PRODCAT_FEEDBACK_NEW_CATEGORIES`` is on): a new category, learnt at the next retrain.
    """
    if state is None or not state.known():
        raise UnknownProductError(
            f"FeedbackEvent: product {event.product_id!r} is unknown to the feedback app: no "
            "product.created/updated or product.categorized event was seen for it (at "
            "$.product_id)",
            field="$.product_id",
        )
    new_ok = policy is not None and policy.may_be_new(event) and is_trusted(event, state, policy)
    check_category(event, nodes, model_version=model_version, new_ok=new_ok)


def check_category(
    event: FeedbackEvent,
    nodes: Collection[tuple[str, ...]],
    *,
    model_version: str = "live",
    new_ok: bool = False,
) -> None:
    """Raise :class:`UnknownCategoryError` when a path is not a node of the live taxonomy
    (``new_ok``: except the corrected ``category_path``, which may be a new category)."""
    for name, raw in (
        ("category_path", event.category_path),
        ("rejected_category_path", event.rejected_category_path),
    ):
        try:
            path = _clean(raw)
        except CategoryPathError as exc:
            raise UnknownCategoryError(
                f"FeedbackEvent: {exc} (at $.{name})", field=f"$.{name}"
            ) from exc
        if path is not None and path not in nodes:
            if new_ok and name == "category_path":
                continue
            raise UnknownCategoryError(
                f"FeedbackEvent: category {format_path(path)!r} is not a category of the "
                f"live model {model_version} (at $.{name}); use a path from its taxonomy",
                field=f"$.{name}",
            )


def is_trusted(event: FeedbackEvent, state: ProductState, policy: Policy) -> bool:
    """Whether this feedback is trusted enough to become an override at once."""
    if event.source in policy.trusted_sources:
        return True
    return (
        event.source == "merchant"
        and policy.merchant_own_products
        and event.seller_id is not None
        and state.seller_id is not None
        and event.seller_id == state.seller_id
    )


def _weak_winner(votes: tuple[Vote, ...], threshold: float) -> tuple[tuple[str, ...], float] | None:
    """The path weak votes agree on: each actor's latest ``correct`` counts with its weight;
    the leader must reach ``threshold`` and be strictly ahead of the runner-up."""
    latest: dict[str, Vote] = {}
    for vote in votes:  # oldest first: a later vote of the same actor replaces the earlier
        if not vote.trusted and vote.action == "correct" and vote.category_path is not None:
            latest[vote.actor] = vote
    totals: dict[tuple[str, ...], float] = defaultdict(float)
    for vote in latest.values():
        assert vote.category_path is not None
        totals[vote.category_path] += vote.weight
    if not totals:
        return None
    ranked = sorted(totals.items(), key=lambda kv: kv[1], reverse=True)
    path, weight = ranked[0]
    runner_up = ranked[1][1] if len(ranked) > 1 else 0.0
    if weight >= threshold and weight > runner_up:
        return path, weight
    return None


def decide(state: ProductState, event: FeedbackEvent, policy: Policy) -> Effect:
    """Apply one (valid) feedback event to a product's state."""
    if state.seen(event.event_id):
        return Effect("duplicate", state)
    at = event.occurred_at.timestamp()
    trusted = is_trusted(event, state, policy)
    path = _clean(event.category_path)
    vote = Vote(
        event_id=event.event_id,
        source=event.source,
        actor=actor_of(event),
        action=event.action,
        category_path=path,
        weight=event.weight if event.weight is not None else 1.0,
        at=at,
        trusted=trusted,
    )
    votes = (*state.votes, vote)[-policy.max_votes :]
    state = msgspec.structs.replace(state, votes=votes)
    prediction = state.prediction
    current = state.override

    if event.action == "accept":
        accepted = None
        if prediction is not None and (path is None or path == prediction.category_path):
            accepted = prediction.category_path
        return Effect(
            "accepted",
            state,
            accepted=accepted,
            model_version=prediction.model_version if prediction else None,
        )

    if event.action == "reject":
        rejected = _clean(event.rejected_category_path)
        if (
            trusted
            and prediction is not None
            and not prediction.corrected
            and (rejected is None or rejected == prediction.category_path)
            and at - prediction.at <= policy.acceptance_window_s
        ):
            state = msgspec.structs.replace(
                state, prediction=msgspec.structs.replace(prediction, corrected=True)
            )
            return Effect(
                "rejected",
                state,
                corrected=prediction.category_path,
                model_version=prediction.model_version,
            )
        return Effect("rejected", state)

    # action == "correct": path is set (the event's own contract guarantees it)
    assert path is not None
    new_override: OverrideState | None = None
    if trusted:
        if current is not None and current.trusted and current.at > at:
            return Effect("stale", state)  # a newer trusted override is in effect
        if current is not None and current.category_path == path:
            return Effect("confirmed", state)
        new_override = OverrideState(
            category_path=path,
            source=event.source,
            trusted=True,
            at=at,
            feedback_event_id=event.event_id,
        )
    else:
        if current is not None and current.trusted:
            return Effect("vote", state)
        winner = _weak_winner(state.votes, policy.user_threshold)
        if winner is None or (current is not None and current.category_path == winner[0]):
            return Effect("vote", state)
        new_override = OverrideState(
            category_path=winner[0],
            source=event.source,
            trusted=False,
            at=at,
            feedback_event_id=event.event_id,
        )

    corrected = None
    version = None
    if (
        prediction is not None
        and not prediction.corrected
        and prediction.category_path != new_override.category_path
    ):
        # The prediction is wrong; it counts against the model once, within the window.
        if at - prediction.at <= policy.acceptance_window_s:
            corrected, version = prediction.category_path, prediction.model_version
        prediction = msgspec.structs.replace(prediction, corrected=True)
    state = msgspec.structs.replace(state, override=new_override, prediction=prediction)
    return Effect(
        "override",
        state,
        override=new_override,
        corrected=corrected,
        corrected_to=new_override.category_path if corrected else None,
        model_version=version,
    )
