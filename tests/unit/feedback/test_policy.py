"""Trust, agreement and validation rules of the feedback app (pure, no services)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from workers.core.events import FeedbackEvent
from workers.feedback.policy import (
    Policy,
    UnknownCategoryError,
    UnknownProductError,
    decide,
    is_trusted,
    taxonomy_nodes,
    validate,
)
from workers.feedback.state import (
    OverrideState,
    Prediction,
    ProductState,
    StoredText,
    decode_state,
    encode_state,
)
from workers.inference.taxonomy import Taxonomy

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ATTA = ("Grocery & Gourmet Foods", "Staples", "Atta & Flours")
RICE = ("Grocery & Gourmet Foods", "Staples", "Rice & Rice Products")
DAL = ("Grocery & Gourmet Foods", "Staples", "Dals & Pulses")
TAXONOMY = Taxonomy.from_unsorted([ATTA, RICE, DAL, ("Beauty & Hygiene", "Hair Care", "Shampoo")])
POLICY = Policy(trusted_sources=frozenset({"moderator"}), user_threshold=3.0)


def state(**changes: object) -> ProductState:
    base = ProductState(
        text=StoredText(title="Aashirvaad Shudh Chakki Whole Wheat Atta, 5 kg", brand="Aashirvaad"),
        seller_id="seller-42",
        prediction=Prediction(model_version="v1", category_path=RICE, at=T0.timestamp()),
    )
    return msgspec.structs.replace(base, **changes)


def fb(
    source: str,
    path: tuple[str, ...] | None = ATTA,
    *,
    action: str = "correct",
    actor: str | None = None,
    seller: str | None = None,
    weight: float | None = None,
    minutes: float = 5,
    event_id: str | None = None,
    rejected: tuple[str, ...] | None = None,
) -> FeedbackEvent:
    at = T0 + timedelta(minutes=minutes)
    return FeedbackEvent(
        event_type="category.feedback",
        event_id=event_id or f"fb-{source}-{actor}-{action}-{minutes}",
        product_id="IN-GROC-000184223",
        action=action,  # type: ignore[arg-type]
        category_path=list(path) if path is not None else None,
        rejected_category_path=list(rejected) if rejected else None,
        source=source,  # type: ignore[arg-type]
        actor_id=actor,
        seller_id=seller,
        weight=weight,
        occurred_at=at,
    )


def test_moderator_correction_is_an_override_at_once_and_counts_against_the_prediction() -> None:
    effect = decide(state(), fb("moderator", actor="mod-1"), POLICY)
    assert effect.outcome == "override"
    assert effect.override is not None
    assert effect.override.category_path == ATTA
    assert effect.override.trusted
    assert effect.corrected == RICE
    assert effect.corrected_to == ATTA
    assert effect.model_version == "v1"
    assert effect.state.prediction is not None and effect.state.prediction.corrected
    assert effect.state.override == effect.override


def test_merchant_is_trusted_on_own_products_only() -> None:
    s = state()
    assert is_trusted(fb("merchant", seller="seller-42"), s, POLICY)
    assert not is_trusted(fb("merchant", seller="seller-7"), s, POLICY)
    assert not is_trusted(fb("merchant", seller=None), s, POLICY)
    strict = Policy(trusted_sources=frozenset({"moderator"}), merchant_own_products=False)
    assert not is_trusted(fb("merchant", seller="seller-42"), s, strict)
    assert decide(s, fb("merchant", seller="seller-42"), POLICY).outcome == "override"
    assert decide(s, fb("merchant", seller="seller-7"), POLICY).outcome == "vote"


def test_user_reports_count_until_the_threshold_and_each_actor_counts_once() -> None:
    s = state()
    outcomes = []
    for i, actor in enumerate(["u1", "u1", "u2", "u3"]):  # u1 twice: still one voice
        effect = decide(s, fb("user", actor=actor, minutes=i + 1), POLICY)
        outcomes.append(effect.outcome)
        s = effect.state
    assert outcomes == ["vote", "vote", "vote", "override"]
    assert s.override is not None and s.override.category_path == ATTA
    assert not s.override.trusted


def test_weights_and_disagreement() -> None:
    s = state()
    for i, (actor, path, weight) in enumerate(
        [("u1", ATTA, 2.0), ("u2", DAL, 2.0), ("u3", ATTA, 0.5), ("u4", DAL, 0.5)]
    ):
        s = decide(s, fb("user", path, actor=actor, weight=weight, minutes=i + 1), POLICY).state
    assert s.override is None, "2.5 against 2.5: no agreement"
    effect = decide(s, fb("user", ATTA, actor="u5", weight=0.5, minutes=9), POLICY)
    assert effect.outcome == "override"
    assert effect.override is not None and effect.override.category_path == ATTA


def test_users_do_not_overturn_a_trusted_override_and_newer_trusted_wins() -> None:
    mod = OverrideState(
        category_path=ATTA,
        source="moderator",
        trusted=True,
        at=(T0 + timedelta(minutes=10)).timestamp(),
        feedback_event_id="fb-mod",
    )
    s = state(override=mod)
    for i in range(5):
        s = decide(s, fb("user", DAL, actor=f"u{i}", minutes=20 + i), POLICY).state
    assert s.override == mod
    older = decide(s, fb("moderator", DAL, actor="mod-2", minutes=1), POLICY)
    assert older.outcome == "stale"
    assert older.override is None
    newer = decide(s, fb("moderator", DAL, actor="mod-2", minutes=30), POLICY)
    assert newer.outcome == "override"
    assert newer.override is not None and newer.override.category_path == DAL
    same = decide(s, fb("moderator", ATTA, actor="mod-3", minutes=40), POLICY)
    assert same.outcome == "confirmed"


def test_a_redelivered_event_has_no_effect() -> None:
    event = fb("moderator", actor="mod-1")
    first = decide(state(), event, POLICY)
    again = decide(first.state, event, POLICY)
    assert again.outcome == "duplicate"
    assert again.state == first.state
    assert again.override is None


def test_correction_after_the_window_does_not_count_against_the_model() -> None:
    policy = Policy(acceptance_window_s=3600.0)
    effect = decide(state(), fb("moderator", minutes=61), policy)
    assert effect.outcome == "override"
    assert effect.corrected is None
    assert effect.state.prediction is not None and effect.state.prediction.corrected
    # ...and a second correction does not count it again either
    later = decide(effect.state, fb("moderator", DAL, minutes=62), policy)
    assert later.corrected is None


def test_accept_and_reject() -> None:
    accepted = decide(state(), fb("user", RICE, action="accept", actor="u1"), POLICY)
    assert (accepted.outcome, accepted.accepted, accepted.override) == ("accepted", RICE, None)
    other = decide(state(), fb("user", ATTA, action="accept", actor="u1"), POLICY)
    assert other.accepted is None, "accepting a category that was not predicted confirms nothing"
    rejected = decide(state(), fb("moderator", None, action="reject", rejected=RICE), POLICY)
    assert (rejected.outcome, rejected.corrected, rejected.corrected_to) == ("rejected", RICE, None)
    weak = decide(state(), fb("user", None, action="reject", actor="u1", rejected=RICE), POLICY)
    assert weak.corrected is None


def test_votes_are_bounded() -> None:
    s = state()
    for i in range(POLICY.max_votes + 10):
        s = decide(s, fb("user", None, action="accept", actor=f"u{i}", minutes=i), POLICY).state
    assert len(s.votes) == POLICY.max_votes
    assert s.votes[-1].actor == f"user:u{POLICY.max_votes + 9}"


def test_validation() -> None:
    nodes = taxonomy_nodes(TAXONOMY)
    assert ("Grocery & Gourmet Foods",) in nodes and ATTA in nodes
    validate(fb("moderator", ("Grocery & Gourmet Foods", "Staples")), state(), nodes)
    with pytest.raises(UnknownProductError) as unknown:
        validate(fb("moderator"), None, nodes)
    assert unknown.value.field == "$.product_id"
    with pytest.raises(UnknownCategoryError) as bad:
        validate(
            fb("moderator", ("Grocery & Gourmet Foods", "Atta")), state(), nodes, model_version="v9"
        )
    assert bad.value.field == "$.category_path"
    assert "Grocery & Gourmet Foods > Atta" in str(bad.value) and "v9" in str(bad.value)
    with pytest.raises(UnknownCategoryError) as bad_rejected:
        validate(fb("user", None, action="reject", rejected=("Nope",)), state(), nodes)
    assert bad_rejected.value.field == "$.rejected_category_path"


MILLETS = ("Grocery & Gourmet Foods", "Staples", "Millets & Other Grains")  # not in TAXONOMY


def test_trusted_corrections_may_name_a_new_category() -> None:
    nodes = taxonomy_nodes(TAXONOMY)
    assert MILLETS not in nodes
    # a moderator, and a merchant on its own product: a new category
    validate(fb("moderator", MILLETS), state(), nodes, policy=POLICY)
    validate(fb("merchant", MILLETS, seller="seller-42"), state(), nodes, policy=POLICY)
    effect = decide(state(), fb("moderator", MILLETS, actor="mod-1"), POLICY)
    assert effect.override is not None and effect.override.category_path == MILLETS
    refused = [
        fb("user", MILLETS, actor="u-1"),  # users only vote: not on categories nobody has
        fb("merchant", MILLETS, seller="seller-7"),  # another seller's product
        fb("moderator", None, action="reject", rejected=MILLETS),  # rejects name known ones
    ]
    for event in refused:
        with pytest.raises(UnknownCategoryError):
            validate(event, state(), nodes, policy=POLICY)
    closed = Policy(trusted_sources=frozenset({"moderator"}), new_categories=False)
    with pytest.raises(UnknownCategoryError, match="Millets & Other Grains"):
        validate(fb("moderator", MILLETS), state(), nodes, policy=closed)
    # before the product is known only the source can be judged: a merchant may still be new
    assert POLICY.may_be_new(fb("moderator", MILLETS))
    assert POLICY.may_be_new(fb("merchant", MILLETS, seller="seller-7"))
    assert not POLICY.may_be_new(fb("user", MILLETS))
    assert not POLICY.may_be_new(fb("moderator", None, action="reject", rejected=MILLETS))
    assert not closed.may_be_new(fb("moderator", MILLETS))


def test_state_round_trip() -> None:
    s = decide(state(), fb("user", actor="u1"), POLICY).state
    assert decode_state(encode_state(s)) == s
    assert decode_state(None) is None
    assert decode_state(b"not json") is None
