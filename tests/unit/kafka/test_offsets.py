from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workers.kafka.offsets import OffsetOrderError, OffsetTracker, Pending

T = "product.created"


def test_single_message_single_output() -> None:
    tr = OffsetTracker()
    p = tr.track(T, 0, 5, outputs=1)
    assert tr.committable() == {}
    assert tr.in_flight == 1
    assert tr.ack(p)
    assert tr.committable() == {(T, 0): 6}
    assert tr.in_flight == 0


def test_out_of_order_acks_hold_back_commit() -> None:
    tr = OffsetTracker()
    a, b, c = (tr.track(T, 0, o, outputs=1) for o in (10, 11, 12))
    tr.ack(c)
    tr.ack(b)
    assert tr.committable() == {}
    tr.ack(a)
    assert tr.committable() == {(T, 0): 13}
    assert tr.pending_messages() == 0


def test_multiple_outputs_per_input() -> None:
    tr = OffsetTracker()
    a = tr.track(T, 0, 0, outputs=2)  # categorized + review
    b = tr.track(T, 0, 1, outputs=1)
    tr.ack(b)
    tr.ack(a)
    assert tr.committable() == {}
    assert tr.in_flight == 1
    tr.ack(a)
    assert tr.committable() == {(T, 0): 2}


def test_extra_ack_is_ignored() -> None:
    tr = OffsetTracker()
    a = tr.track(T, 0, 0, outputs=1)
    assert tr.ack(a)
    assert not tr.ack(a)
    assert tr.in_flight == 0


def test_gaps_in_offsets_are_fine() -> None:
    # Compaction and transaction markers leave gaps; commit goes past the last done one.
    tr = OffsetTracker()
    a = tr.track(T, 0, 3, outputs=1)
    b = tr.track(T, 0, 9, outputs=1)
    tr.ack(b)
    tr.ack(a)
    assert tr.committable() == {(T, 0): 10}


def test_zero_outputs_done_at_once() -> None:
    tr = OffsetTracker()
    tr.track(T, 0, 0, outputs=0)
    assert tr.committable() == {(T, 0): 1}
    a = tr.track(T, 0, 1, outputs=1)
    tr.track(T, 0, 2, outputs=0)
    assert tr.committable() == {(T, 0): 1}
    tr.ack(a)
    assert tr.committable() == {(T, 0): 3}


def test_partitions_are_independent() -> None:
    tr = OffsetTracker()
    a0 = tr.track(T, 0, 0, outputs=1)
    b0 = tr.track(T, 1, 0, outputs=1)
    c0 = tr.track("product.updated", 0, 0, outputs=1)
    tr.ack(b0)
    tr.ack(c0)
    assert tr.committable() == {(T, 1): 1, ("product.updated", 0): 1}
    tr.ack(a0)
    assert tr.committable()[(T, 0)] == 1


def test_mark_committed_hides_until_advanced() -> None:
    tr = OffsetTracker()
    a = tr.track(T, 0, 0, outputs=1)
    b = tr.track(T, 0, 1, outputs=1)
    tr.ack(a)
    assert tr.committable() == {(T, 0): 1}
    tr.mark_committed({(T, 0): 1})
    assert tr.committable() == {}
    tr.ack(b)
    assert tr.committable() == {(T, 0): 2}
    # An older commit completing late does not move the mark backwards.
    tr.mark_committed({(T, 0): 2})
    tr.mark_committed({(T, 0): 1})
    assert tr.committable() == {}


def test_force_offers_committed_offsets_again() -> None:
    tr = OffsetTracker()
    tr.ack(tr.track(T, 0, 0, outputs=1))
    tr.track(T, 1, 0, outputs=1)
    tr.mark_committed(tr.committable())
    assert tr.committable() == {}
    assert tr.committable(force=True) == {(T, 0): 1}
    assert tr.committable_for([(T, 0), (T, 1)], force=True) == {(T, 0): 1}


def test_reset_committed_offers_again() -> None:
    tr = OffsetTracker()
    tr.ack(tr.track(T, 0, 0, outputs=1))
    tr.mark_committed(tr.committable())
    assert tr.committable() == {}
    tr.reset_committed([(T, 0), (T, 9)])
    assert tr.committable() == {(T, 0): 1}


def test_committable_for_restricts() -> None:
    tr = OffsetTracker()
    for p in range(3):
        tr.ack(tr.track(T, p, 0, outputs=1))
    assert tr.committable_for([(T, 1), (T, 7)]) == {(T, 1): 1}


def test_offsets_must_increase() -> None:
    tr = OffsetTracker()
    tr.track(T, 0, 5, outputs=1)
    with pytest.raises(OffsetOrderError):
        tr.track(T, 0, 5, outputs=1)
    with pytest.raises(OffsetOrderError):
        tr.track(T, 0, 4, outputs=1)
    with pytest.raises(ValueError):
        tr.track(T, 1, 0, outputs=-1)


def test_revocation_forgets_and_ignores_late_acks() -> None:
    tr = OffsetTracker()
    a = tr.track(T, 0, 0, outputs=2)
    b = tr.track(T, 1, 0, outputs=1)
    tr.ack(a)
    assert tr.in_flight == 2
    assert tr.forget([(T, 0)]) == 1
    assert tr.in_flight == 1
    assert (T, 0) not in tr.partitions()
    # Re-assigned later, starting again from the committed offset.
    a2 = tr.track(T, 0, 0, outputs=1)
    assert not tr.ack(a)  # stale ack from the old assignment
    assert tr.committable() == {}
    tr.ack(a2)
    tr.ack(b)
    assert tr.committable() == {(T, 0): 1, (T, 1): 1}
    assert tr.in_flight == 0


def test_forget_unknown_partition_is_noop() -> None:
    tr = OffsetTracker()
    assert tr.forget([(T, 3)]) == 0
    tr.clear()
    assert tr.partitions() == []


def test_pending_repr_and_coordinates() -> None:
    tr = OffsetTracker()
    p = tr.track(T, 2, 7, outputs=1)
    assert isinstance(p, Pending)
    assert (p.topic, p.partition, p.offset) == (T, 2, 7)
    assert "product.created" in repr(p)


def test_large_random_run() -> None:
    rng = random.Random(7)
    tr = OffsetTracker()
    handles: list[Pending] = []
    for off in range(5000):
        n = rng.choice((1, 1, 2))
        p = tr.track(T, 0, off, outputs=n)
        handles.extend([p] * n)
    rng.shuffle(handles)
    for h in handles:
        tr.ack(h)
    assert tr.committable() == {(T, 0): 5000}
    assert tr.in_flight == 0


# --- property: committed never passes an unacknowledged output -------------------------

_messages = st.lists(
    st.tuples(st.integers(0, 2), st.integers(0, 3)),  # (partition, outputs)
    min_size=1,
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(_messages, st.randoms(use_true_random=False), st.integers(0, 2))
def test_property_commit_never_passes_unacked(
    messages: list[tuple[int, int]], rnd: random.Random, revoke: int
) -> None:
    tr = OffsetTracker()
    next_offset = {0: 0, 1: 0, 2: 0}
    acks: list[Pending] = []
    outputs: dict[tuple[int, int], int] = {}
    for part, n in messages:
        off = next_offset[part]
        next_offset[part] += rnd.choice((1, 1, 2))  # gaps allowed
        h = tr.track(T, part, off, outputs=n)
        acks.extend([h] * n)
        outputs[(part, off)] = n
    rnd.shuffle(acks)
    revoke_at = rnd.randint(0, len(acks))
    remaining = dict(outputs)
    committed: dict[int, int] = {}
    forgotten = False
    for i, h in enumerate(acks):
        if i == revoke_at and not forgotten:
            tr.forget([(T, revoke)])
            forgotten = True
        accepted = tr.ack(h)
        assert accepted == (not (forgotten and h.partition == revoke))
        remaining[(h.partition, h.offset)] -= 1
        offsets = tr.committable()
        for (_, part), off in offsets.items():
            # every tracked message below the committable offset is fully acknowledged
            for (p2, o2), left in remaining.items():
                if p2 == part and o2 < off:
                    assert left == 0, (part, off, o2)
            assert off > committed.get(part, -1)
            committed[part] = off
        tr.mark_committed(offsets)
    for (_, part), off in tr.committable().items():
        committed[part] = off
    assert tr.in_flight == 0
    # At the end every live partition committed past its last tracked message.
    for part in range(3):
        if forgotten and part == revoke:
            assert (T, part) not in tr.partitions()
            continue
        offs = [o for (p, o) in outputs if p == part]
        if offs:
            assert committed.get(part) == max(offs) + 1
