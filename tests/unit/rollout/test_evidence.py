"""workers.rollout.evidence: which of the feedback app's quality counts are evidence."""

from __future__ import annotations

from workers.core.settings import Settings
from workers.feedback.quality import (
    Counts,
    category_key,
    confusion_key,
    encode_counts,
    window_key,
)
from workers.rollout.evidence import fold_evidence, quality_topic

BUCKET_S = 10.0
WINDOW_S = 60.0
SINCE = 1_000_000.0  # a bucket boundary


def _w(
    partition: int, version: str, start: float, predictions: int, corrections: int
) -> tuple[bytes, bytes]:
    bucket = int(start // BUCKET_S)
    return window_key(partition, version, bucket), encode_counts(Counts(predictions, corrections))


def test_matured_buckets_since_the_canary_are_summed_over_partitions() -> None:
    now = SINCE + 200
    items = [
        _w(0, "a", SINCE, 100, 30),
        _w(1, "a", SINCE + 10, 50, 5),
        _w(0, "b", SINCE + 20, 40, 4),
        _w(3, "b", SINCE + 120, 60, 6),  # ends at +130, matures at +190: counts
        _w(2, "b", SINCE + 140, 70, 7),  # matures at +210: still open
        _w(0, "a", SINCE - 10, 999, 999),  # before the canary was set
        (category_key(0, "a", ("Food", "Tea")), encode_counts(Counts(5, 5))),
        (confusion_key(0, ("Food",), ("Tea",)), encode_counts(Counts(0, 7))),
        (b"not a quality key", b"\x00"),
    ]
    ev = fold_evidence(items, since=SINCE, now=now, bucket_s=BUCKET_S, window_s=WINDOW_S)
    assert ev.settled == {"a": 150, "b": 100}
    assert ev.corrected == {"a": 35, "b": 10}
    arm = ev.arm("b")
    assert (arm.version, arm.settled, arm.corrected) == ("b", 100, 10)
    assert ev.arm("never-seen").settled == 0


def test_a_bucket_that_began_before_the_canary_does_not_count() -> None:
    items = [_w(0, "a", SINCE - 10, 10, 1)]  # begins 5 s before the canary was set
    ev = fold_evidence(
        items, since=SINCE - 5, now=SINCE + 500, bucket_s=BUCKET_S, window_s=WINDOW_S
    )
    assert ev.settled == {}


def test_the_quality_topic_is_the_feedback_apps_changelog() -> None:
    s = Settings().with_overrides(feedback={"app_id": "fb-7"})
    assert quality_topic(s) == "fb-7-quality-changelog"
