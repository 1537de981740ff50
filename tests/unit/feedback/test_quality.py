"""Acceptance-rate and correction counts of the feedback app (pure, no services)."""

from __future__ import annotations

from workers.feedback.quality import (
    Counts,
    bucket_of,
    category_key,
    confusion_key,
    encode_counts,
    matured,
    summarize,
    window_key,
)

BUCKET_S = 10.0
WINDOW_S = 60.0
ATTA = ("Grocery & Gourmet Foods", "Staples", "Atta & Flours")
RICE = ("Grocery & Gourmet Foods", "Staples", "Rice & Rice Products")


def test_buckets_mature_one_window_after_they_end() -> None:
    assert bucket_of(1000.0, BUCKET_S) == 100
    assert bucket_of(1009.99, BUCKET_S) == 100
    # bucket 100 covers [1000, 1010): its last prediction may be corrected until 1070
    assert not matured(100, BUCKET_S, WINDOW_S, now=1069.9)
    assert matured(100, BUCKET_S, WINDOW_S, now=1070.0)


def test_acceptance_rate_over_matured_buckets_of_owned_partitions() -> None:
    items = [
        (window_key(0, "v1", 100), encode_counts(Counts(predictions=6, corrections=2))),
        (window_key(1, "v1", 100), encode_counts(Counts(predictions=4, corrections=1))),
        (window_key(1, "v1", 101), encode_counts(Counts(predictions=5, corrections=5))),  # open
        (window_key(2, "v1", 100), encode_counts(Counts(predictions=90))),  # not owned
        (window_key(0, "v2", 100), encode_counts(Counts(predictions=4, corrections=1))),
        (category_key(0, "v1", RICE), encode_counts(Counts(predictions=10, corrections=3))),
        (category_key(1, "v1", RICE), encode_counts(Counts(accepts=2))),
        (confusion_key(0, RICE, ATTA), encode_counts(Counts(corrections=3))),
        (confusion_key(1, RICE, ATTA), encode_counts(Counts(corrections=1))),
        (confusion_key(1, ATTA, RICE), encode_counts(Counts(corrections=2))),
    ]
    snap = summarize(items, now=1075.0, bucket_s=BUCKET_S, window_s=WINDOW_S, partitions={0, 1})
    assert snap.acceptance["v1"] == Counts(predictions=10, corrections=3)
    assert snap.acceptance_rate("v1") == 0.7
    assert snap.acceptance_rate("v2") == 0.75
    assert snap.acceptance_rate("v3") is None
    assert snap.pending["v1"] == Counts(predictions=5, corrections=5)
    rice = " > ".join(RICE)
    assert snap.categories[("v1", rice)] == Counts(predictions=10, corrections=3, accepts=2)
    assert snap.confusions == [((rice, " > ".join(ATTA)), 4), ((" > ".join(ATTA), rice), 2)]
    everything = summarize(items, now=1075.0, bucket_s=BUCKET_S, window_s=WINDOW_S)
    assert everything.acceptance["v1"].predictions == 100


def test_unreadable_entries_are_skipped() -> None:
    items = [(b"junk", b"junk"), (window_key(0, "v1", 1), b"\xff\xfe")]
    snap = summarize(items, now=1e9, bucket_s=BUCKET_S, window_s=WINDOW_S)
    assert snap.acceptance == {"v1": Counts()}
    assert snap.acceptance_rate("v1") is None
