"""The canary controller on real Kafka: the feedback app counts scripted moderators'
corrections of two model versions, the controller judges the canary on those counts,
promotes it or rolls it back, records why, and never decides twice."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest

from export.data.catalog import Example
from tests.integration.classify_support import text_of, wait_for
from tests.integration.feedback_support import (
    TIMEOUT_S,
    FeedbackSetup,
    distinct,
    dump_labels_cli,
    feedback,
    leaves,
    prediction,
    running_app,
    send,
    send_all_handled,
)
from tests.integration.model_lifecycle_support import derive_bundle
from workers.core.codec import Codec
from workers.core.events import (
    LabelEvent,
    ModelDecisionEvent,
    ModelLiveEvent,
    VersionOutcome,
    utc_now,
)
from workers.core.settings import Settings
from workers.inference.bundle import load_bundle
from workers.inference.model import Classifier
from workers.kafka.sandbox import TopicSandbox
from workers.kafka.snapshot import read_topic
from workers.lifecycle.admin import ModelAdmin
from workers.lifecycle.control import ControlWriter
from workers.lifecycle.gate import GateRefusedError, top_answers
from workers.rollout.controller import CanaryController, StepResult, read_decisions

PER_VERSION = 300
HOUR = timedelta(hours=1)


@pytest.fixture
def rollout(
    make_setup: Any, topic_factory: TopicSandbox, classify_bundle: Path, tmp_path: Path
) -> tuple[FeedbackSetup, str, str]:
    """A feedback setup with a model store and a decisions topic of its own; the session's
    bundle published as the live version A, a copy published as B."""
    s: FeedbackSetup = make_setup(acceptance_window_s=60, acceptance_bucket_s=10)
    s.topics["decisions"] = topic_factory.new(1, name="decisions")
    s.extra["model"] = {"store": str(tmp_path / "store")}
    s.extra["rollout"] = {"min_settled": 200, "alpha": 0.05, "tau": 0.02}
    a = load_bundle(classify_bundle).version
    b = f"{a}-b"
    copy = derive_bundle(classify_bundle, tmp_path / "bundles" / b, b)
    admin = ModelAdmin(s.settings(), actor="rollout-test")
    admin.publish(classify_bundle, live=True)
    admin.publish(copy)
    return s, a, b


def _set_canary(settings: Settings, canary: str, *, ago: timedelta) -> ModelLiveEvent:
    """Make ``canary`` the canary of the live record, as if set ``ago`` (the evidence the
    controller counts begins then)."""
    admin = ModelAdmin(settings, actor="rollout-test")
    live = admin.state().live
    assert live is not None
    event = msgspec.structs.replace(
        live,
        canary_version=canary,
        canary_share=0.5,
        reason=f"canary {canary} at 50%",
        changed_at=utc_now() - ago,
    )
    ControlWriter(settings).write(event)
    return event


def _moderated_traffic(
    s: FeedbackSetup,
    rows: list[Example],
    bundle: Path,
    since: ModelLiveEvent,
    wrong: dict[str, int],
) -> None:
    """PER_VERSION predictions per version, made 10-20 s after the canary was set (long
    matured now), and a moderator's correction 30 s later for ``wrong[version]`` of them;
    the feedback app counts them into its quality table."""
    taxonomy = leaves(bundle)
    shown, fixed = taxonomy[0], taxonomy[1]
    t0 = since.changed_at + timedelta(seconds=10)
    preds, fixes = [], []
    for k, version in enumerate(sorted(wrong)):
        for i, row in enumerate(rows[k * PER_VERSION : (k + 1) * PER_VERSION]):
            at = t0 + timedelta(seconds=i % 10)
            preds.append(prediction(row.product_id, shown, version, at))
            if i < wrong[version]:
                fixes.append(
                    feedback(row.product_id, "moderator", fixed, at=at + timedelta(seconds=30))
                )
    with running_app(s.settings()) as fb:
        send_all_handled(fb, s, "categorized", preds)
        send_all_handled(fb, s, "feedback", fixes)


def _judged(controller: CanaryController) -> StepResult:
    """Step until a verdict (the app's changelog records reach Kafka a moment after it
    handled the events)."""
    results: list[StepResult] = []

    def decided() -> bool:
        results.append(controller.step())
        return results[-1].decision is not None

    wait_for(decided, TIMEOUT_S, "a verdict", interval_s=1.0)
    return results[-1]


def _decision_records(s: FeedbackSetup) -> list[ModelDecisionEvent]:
    settings = s.settings()
    codec = Codec()
    return [
        codec.decode(r.value, ModelDecisionEvent)
        for r in read_topic(settings.kafka, settings.topics.decisions, "test")
        if r.value is not None
    ]


@pytest.mark.slow
def test_a_better_canary_is_promoted_once(
    rollout: tuple[FeedbackSetup, str, str], catalog_rows: list[Example], classify_bundle: Path
) -> None:
    s, a, b = rollout
    pointer = _set_canary(s.settings(), b, ago=HOUR)
    # moderators correct 30% of the live model's answers and 10% of the canary's
    wrong = {a: 90, b: 30}
    _moderated_traffic(s, distinct(catalog_rows, 2 * PER_VERSION), classify_bundle, pointer, wrong)

    result = _judged(CanaryController(s.settings(), actor="controller-1"))
    decision = result.decision
    assert decision is not None
    print(f"\n{decision.verdict}: {decision.reason}")
    assert decision.verdict == "promote"
    assert decision.live == VersionOutcome(version=a, settled=PER_VERSION, corrected=90)
    assert decision.canary == VersionOutcome(version=b, settled=PER_VERSION, corrected=30)
    assert decision.difference == pytest.approx(0.2)
    assert decision.p_value < 0.05
    assert decision.evidence_since == pointer.changed_at
    assert result.acted is not None and b in result.acted
    live = ModelAdmin(s.settings()).state().live
    assert live is not None
    assert (live.version, live.previous_version, live.canary_version) == (b, a, None)

    # a restarted controller finds nothing left to judge, and nothing was decided twice
    again = CanaryController(s.settings(), actor="controller-2").step()
    assert again.canary is None and again.decision is None and again.acted is None
    assert _decision_records(s) == [decision]


@pytest.mark.slow
def test_a_worse_canary_is_rolled_back_and_the_record_says_why(
    rollout: tuple[FeedbackSetup, str, str], catalog_rows: list[Example], classify_bundle: Path
) -> None:
    s, a, b = rollout
    pointer = _set_canary(s.settings(), b, ago=HOUR)
    wrong = {a: 30, b: 90}
    _moderated_traffic(s, distinct(catalog_rows, 2 * PER_VERSION), classify_bundle, pointer, wrong)

    decision = _judged(CanaryController(s.settings())).decision
    assert decision is not None
    assert decision.verdict == "rollback"
    assert "canary worse" in decision.reason
    assert f"{1 - 90 / PER_VERSION:.4f}" in decision.reason  # the canary's acceptance rate
    assert decision.difference == pytest.approx(-0.2)
    live = ModelAdmin(s.settings()).state().live
    assert live is not None
    assert (live.version, live.canary_version, live.canary_share) == (a, None, 0.0)
    assert read_decisions(s.settings())[b] == decision


def test_a_canary_without_evidence_times_out(rollout: tuple[FeedbackSetup, str, str]) -> None:
    s, a, b = rollout
    pointer = _set_canary(s.settings(), b, ago=timedelta(days=15))  # limit: 14 days
    result = CanaryController(s.settings()).step()
    assert result.decision is not None
    assert result.decision.verdict == "timeout"
    assert "too little evidence" in result.decision.reason
    assert result.decision.evidence_since == pointer.changed_at
    live = ModelAdmin(s.settings()).state().live
    assert live is not None and (live.version, live.canary_version) == (a, None)


def test_a_recorded_decision_is_carried_out_not_taken_again(
    rollout: tuple[FeedbackSetup, str, str],
) -> None:
    """A controller that recorded a promotion and died before moving the pointer: the next
    one moves it without judging (there is no evidence at all, so judging would not)."""
    s, a, b = rollout
    pointer = _set_canary(s.settings(), b, ago=HOUR)
    recorded = ModelDecisionEvent(
        event_type="model.decision",
        candidate_version=b,
        live_version=a,
        verdict="promote",
        reason="canary better (recorded by a controller that then died)",
        test="mSPRT normal mixture (alpha=0.05, tau=0.02, margin=0)",
        alpha=0.05,
        margin=0.0,
        live=VersionOutcome(version=a, settled=500, corrected=150),
        canary=VersionOutcome(version=b, settled=500, corrected=50),
        difference=0.2,
        p_value=0.001,
        evidence_since=pointer.changed_at,
        decided_at=utc_now(),
        decided_by="controller-that-died",
    )
    controller = CanaryController(s.settings())
    controller._record(recorded)
    result = controller.step()
    assert result.decision == recorded and result.judgement is None
    live = ModelAdmin(s.settings()).state().live
    assert live is not None and (live.version, live.canary_version) == (b, None)
    assert _decision_records(s) == [recorded]


def test_a_canary_set_again_is_a_new_trial(rollout: tuple[FeedbackSetup, str, str]) -> None:
    """After a timeout an operator sets the same version as the canary again: the old
    decision is not re-applied; the controller waits for new evidence."""
    s, _a, b = rollout
    _set_canary(s.settings(), b, ago=timedelta(days=15))
    assert CanaryController(s.settings()).step().decision is not None  # timeout
    _set_canary(s.settings(), b, ago=timedelta(minutes=1))
    result = CanaryController(s.settings()).step()
    assert result.decision is None and result.acted is None
    assert result.judgement is not None and result.judgement.verdict == "continue"
    live = ModelAdmin(s.settings()).state().live
    assert live is not None and live.canary_version == b


def _label(row: Example, at: datetime) -> LabelEvent:
    """A moderator's label of a catalog row, made at ``at``."""
    return LabelEvent(
        event_type="category.label",
        event_id=f"label-{row.product_id}",
        product_id=row.product_id,
        title=row.title,
        description=row.description,
        brand=row.brand,
        attributes=row.attributes,
        category_path=list(row.path),
        source="moderator",
        label_time=at,
        feedback_event_id=f"fb-{row.product_id}",
    )


def test_the_offline_gate_wants_the_recent_corrections_fixed(
    rollout: tuple[FeedbackSetup, str, str],
    catalog_rows: list[Example],
    classify_bundle: Path,
    tmp_path: Path,
) -> None:
    """prodcat models gate: B (a copy of the live A) passes the stored-figures gate, but it
    answers the moderators' corrections of A's mistakes exactly as A did: refused."""
    s, _a, b = rollout
    admin = ModelAdmin(s.settings())
    assert admin.gate(b).startswith("passed: ")
    classifier = Classifier.from_path(classify_bundle)
    rows = distinct(catalog_rows, 600)
    answers = top_answers(classifier, [text_of(r) for r in rows])
    wrong = [r for r, path in zip(rows, answers, strict=True) if path != r.path]
    assert wrong, "the test bundle gets some of its own training rows wrong"
    dump = tmp_path / "labels.jsonl"
    dump.write_bytes(b"".join(msgspec.json.encode(_label(r, utc_now())) + b"\n" for r in wrong))
    with pytest.raises(GateRefusedError, match=rf"answers {len(wrong)} wrong; .* 0 of those right"):
        admin.gate(b, labels=dump)
    assert admin.gate(b, labels=dump, min_fixed=0.0).startswith("passed: ")


def test_labels_dump_since_the_live_bundle(
    rollout: tuple[FeedbackSetup, str, str],
    catalog_rows: list[Example],
    classify_bundle: Path,
    tmp_path: Path,
) -> None:
    """prodcat labels dump --since-live: only the corrections the live model never saw."""
    s, _a, _b = rollout
    made = load_bundle(classify_bundle).metadata.created_at
    old_row, new_row = catalog_rows[0], catalog_rows[1]
    labels = [_label(old_row, made - HOUR), _label(new_row, utc_now())]
    send(s.bootstrap, s.topics["labels"], labels)
    everything = dump_labels_cli(s, tmp_path / "all.jsonl")
    assert [lb.product_id for lb in everything] == [old_row.product_id, new_row.product_id]
    recent = dump_labels_cli(s, tmp_path / "recent.jsonl", "--since-live")
    assert [lb.product_id for lb in recent] == [new_row.product_id]
