"""What the app restores into Redis, and when a model answer means the override was missed
(pure: values and positions, no Redis)."""

from __future__ import annotations

from datetime import UTC, datetime

from workers.core.categories import category_id
from workers.core.overrides import decode_override, restore_marker_key
from workers.feedback.app import heartbeat_interval
from workers.feedback.outputs import override_value
from workers.feedback.parking import ParkedIndex
from workers.feedback.state import OverrideState, ProductState, decode_state, encode_state

ATTA = ("Grocery & Gourmet Foods", "Staples", "Atta & Flours")
AT = datetime(2026, 11, 30, 9, 15, 42, 123456, tzinfo=UTC)


def override(**changes: object) -> OverrideState:
    values: dict[str, object] = {
        "category_path": ATTA,
        "source": "moderator",
        "trusted": True,
        "at": AT.timestamp(),
        "feedback_event_id": "fb-7f3a",
    }
    values.update(changes)
    return OverrideState(**values)  # type: ignore[arg-type]


def test_the_restored_value_is_what_the_worker_reads_and_people_see() -> None:
    raw = override_value(override())
    found = decode_override(raw)
    assert found is not None
    assert (found.path, found.source, found.category_id) == (ATTA, "moderator", category_id(ATTA))
    assert b'"feedback_event_id":"fb-7f3a"' in raw
    assert b'"occurred_at":"2026-11-30T09:15:42.123456+00:00"' in raw
    assert override_value(override()) == raw, "a live write and a restore write the same bytes"


def test_an_answer_after_the_latest_override_answer_is_one_given_without_it() -> None:
    unknown = override()
    assert unknown.shown_before(0, 5), "no override answer known: any model answer is later"
    shown = override(shown=(2, 40))
    assert shown.shown_before(2, 41)
    assert not shown.shown_before(2, 40), "the override answer itself"
    assert not shown.shown_before(2, 12), "an older answer, already superseded on the topic"
    assert shown.shown_before(1, 3), "another partition: nothing known, so re-assert"


def test_states_keep_their_partition_and_old_states_still_read() -> None:
    state = ProductState(override=override(shown=(1, 7)), partition=1)
    assert decode_state(encode_state(state)) == state
    old = b'{"override":{"category_path":["A","B"],"source":"moderator","trusted":true,'
    old += b'"at":1.0,"feedback_event_id":"fb-1"}}'
    before = decode_state(old)
    assert before is not None and before.override is not None
    assert (before.partition, before.override.shown) == (None, None)


def test_marker_key_and_heartbeat() -> None:
    assert restore_marker_key("prodcat", "prodcat-feedback") == (
        "prodcat:feedback-restored:prodcat-feedback"
    )
    assert heartbeat_interval(8.0) == 1.6
    assert heartbeat_interval(60.0) == 3.0


def test_parked_index_lists_its_partitions() -> None:
    index = ParkedIndex()
    index.rebuild({0, 2}, [])
    assert sorted(index.partitions()) == [0, 2]
    index.forget([0])
    assert index.partitions() == [2]
