"""The online evidence of each model version, read from the feedback app's quality table.

The feedback app counts, per input partition, model version and time bucket, the predictions
made and how many of them were corrected within the acceptance window
(:mod:`workers.feedback.quality`, keys of kind ``w``). Its faust table is backed by a
compacted changelog topic, ``<PRODCAT_FEEDBACK_APP_ID>-quality-changelog``; reading that topic
to its end gives every count without asking the app. A bucket counts once it has *matured*
(its whole window has passed: every prediction in it had its chance to be corrected), and
only if it began at or after the canary was set, so the live version and the canary are
compared over the same period.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from workers.core.settings import Settings
from workers.feedback.quality import summarize
from workers.kafka.snapshot import newest_per_key, read_topic
from workers.rollout.judge import ArmCounts

__all__ = ["Evidence", "fold_evidence", "quality_topic", "read_evidence"]


@dataclass(frozen=True, slots=True)
class Evidence:
    """Settled and corrected predictions per model version since a moment."""

    settled: dict[str, int]
    corrected: dict[str, int]
    since: float
    now: float

    def arm(self, version: str) -> ArmCounts:
        return ArmCounts(version, self.settled.get(version, 0), self.corrected.get(version, 0))


def quality_topic(settings: Settings) -> str:
    """The feedback app's quality changelog topic (faust names it after the app and table)."""
    return f"{settings.feedback.app_id}-quality-changelog"


def fold_evidence(
    items: Iterable[tuple[bytes, bytes]],
    *,
    since: float,
    now: float,
    bucket_s: float,
    window_s: float,
) -> Evidence:
    """Add up the matured window buckets that began at or after ``since`` (epoch seconds),
    as the feedback app's own figures do (:func:`workers.feedback.quality.summarize`)."""
    snapshot = summarize(items, now=now, bucket_s=bucket_s, window_s=window_s, since=since)
    matured_counts = snapshot.acceptance
    return Evidence(
        {version: c.predictions for version, c in matured_counts.items()},
        {version: c.corrections for version, c in matured_counts.items()},
        since,
        now,
    )


def read_evidence(
    settings: Settings, *, since: float, now: float, timeout_s: float = 30.0
) -> Evidence:
    """:func:`fold_evidence` over the quality changelog as it is now."""
    newest = newest_per_key(
        read_topic(settings.kafka, quality_topic(settings), "rollout-evidence", timeout_s=timeout_s)
    )
    items = ((key, r.value) for key, r in newest.items() if r.value is not None)
    return fold_evidence(
        items,
        since=since,
        now=now,
        bucket_s=float(settings.feedback.acceptance_bucket_s),
        window_s=float(settings.feedback.acceptance_window_s),
    )
