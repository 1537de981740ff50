"""Feedback parked until its product is known: park, expire, the partition index (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import pytest

from workers.core.codec import Codec
from workers.core.events import FeedbackEvent
from workers.feedback.parking import ParkedIndex, expire, park
from workers.feedback.policy import (
    UnknownCategoryError,
    UnknownProductError,
    check_category,
    taxonomy_nodes,
    validate,
)
from workers.feedback.state import (
    MAX_PARKED,
    ParkedFeedback,
    Prediction,
    ProductState,
    StoredText,
    decode_state,
    encode_state,
)
from workers.inference.taxonomy import Taxonomy

ATTA = ("Grocery & Gourmet Foods", "Staples", "Atta & Flours")
RICE = ("Grocery & Gourmet Foods", "Staples", "Rice & Rice Products")
NODES = taxonomy_nodes(Taxonomy.from_unsorted([ATTA, RICE]))
CODEC = Codec(1 << 20)
PRODUCT = "IN-GROC-000184223"


def feedback(path: tuple[str, ...] = ATTA, product_id: str = PRODUCT) -> FeedbackEvent:
    return FeedbackEvent(
        event_type="category.feedback",
        event_id=f"fb-{product_id}-{'/'.join(path)}",
        product_id=product_id,
        action="correct",
        category_path=list(path),
        source="moderator",
        actor_id="mod-7",
        occurred_at=datetime(2026, 3, 1, 12, 0, tzinfo=UTC),
    )


def parked(offset: int, at: float, *, partition: int = 2) -> ParkedFeedback:
    return ParkedFeedback(
        topic="category.feedback",
        partition=partition,
        offset=offset,
        key=PRODUCT.encode(),
        value=CODEC.encode(feedback()),
        headers=(("trace", b"t-1"),),
        parked_at=at,
    )


def test_parked_feedback_is_kept_in_order_bounded_and_not_repeated() -> None:
    s = park(None, parked(10, 100.0))
    assert s is not None
    s = park(s, parked(11, 101.0))
    assert s is not None
    assert [p.offset for p in s.pending] == [10, 11]
    assert park(s, parked(10, 150.0)) is s, "a redelivered message is parked once"
    for offset in range(12, 10 + MAX_PARKED):
        s = park(s, parked(offset, 102.0))
        assert s is not None
    assert len(s.pending) == MAX_PARKED
    assert park(s, parked(99, 103.0)) is None, "full: the caller dead-letters it at once"
    assert park(s, parked(99, 103.0), limit=MAX_PARKED + 1) is not None


def test_a_state_with_only_parked_feedback_is_still_an_unknown_product() -> None:
    s = park(None, parked(10, 100.0))
    assert s is not None and not s.known()
    with pytest.raises(UnknownProductError) as unknown:
        validate(feedback(), s, NODES)
    assert unknown.value.field == "$.product_id"
    text = StoredText(title="Aashirvaad Shudh Chakki Whole Wheat Atta, 5 kg", brand="Aashirvaad")
    assert msgspec.structs.replace(s, text=text).known()
    assert msgspec.structs.replace(s, input_hash="0123456789abcdef").known()
    prediction = Prediction(model_version="v1", category_path=RICE, at=100.0)
    assert msgspec.structs.replace(s, prediction=prediction).known()
    validate(feedback(), msgspec.structs.replace(s, text=text), NODES)


def test_an_unknown_category_is_found_without_the_product() -> None:
    check_category(feedback(), NODES)
    with pytest.raises(UnknownCategoryError) as bad:
        check_category(feedback(("Grocery & Gourmet Foods", "Atta")), NODES, model_version="v9")
    assert bad.value.field == "$.category_path"


def test_expire_splits_the_overdue_items_and_keeps_the_rest() -> None:
    s = ProductState(pending=(parked(10, 100.0), parked(11, 200.0), parked(12, 250.0)))
    old, rest = expire(s, now=400.0, grace_s=200.0)
    assert [p.offset for p in old] == [10, 11]
    assert [p.offset for p in rest.pending] == [12]
    none, same = expire(s, now=250.0, grace_s=200.0)
    assert none == () and same is s


def test_parked_state_survives_the_changelog_encoding() -> None:
    s = park(None, parked(10, 100.0))
    assert s is not None
    back = decode_state(encode_state(s))
    assert back == s
    assert back is not None and back.pending[0].value == CODEC.encode(feedback())
    assert back.pending[0].headers == (("trace", b"t-1"),)


def test_the_index_tracks_due_products_per_partition() -> None:
    index = ParkedIndex()
    assert not index.indexed(2)
    a = ProductState(pending=(parked(10, 100.0), parked(11, 300.0)))
    b = ProductState(pending=(parked(12, 250.0),))
    index.update(2, "a", a)
    index.update(2, "b", b)
    assert index.indexed(2) and index.total == 3
    assert index.due(2, now=310.0, grace_s=200.0) == ["a"]
    assert sorted(index.due(2, now=460.0, grace_s=200.0)) == ["a", "b"]
    assert index.due(1, now=1e9, grace_s=1.0) == []
    _, rest = expire(a, now=310.0, grace_s=200.0)
    index.update(2, "a", rest)
    assert index.total == 2 and index.due(2, now=310.0, grace_s=200.0) == []
    index.update(2, "b", None)
    assert index.total == 1
    index.forget([2])
    assert index.total == 0 and not index.indexed(2)


def test_the_index_is_rebuilt_from_the_table_for_the_wanted_partitions() -> None:
    index = ParkedIndex()
    index.update(0, "stale", ProductState(pending=(parked(1, 1.0, partition=0),)))
    states = [
        ("p0", ProductState(pending=(parked(5, 10.0, partition=0),))),
        ("p1", ProductState(pending=(parked(6, 20.0, partition=1), parked(7, 30.0, partition=1)))),
        ("p2", ProductState(pending=(parked(8, 40.0, partition=2),))),
    ]
    index.rebuild({0, 1}, states)
    assert index.indexed(0) and index.indexed(1) and not index.indexed(2)
    assert index.total == 3
    assert index.due(0, now=1e9, grace_s=1.0) == ["p0"], "the stale entry is gone"
    assert index.due(1, now=1e9, grace_s=1.0) == ["p1"]
