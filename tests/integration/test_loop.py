"""The whole loop on real Kafka and Redis with real bigbasket products: moderators
systematically refile one category, the corrections become labels, a retrained model passes
the corrections gate, serves as a canary beside the live model in a real classify worker,
scripted moderators keep correcting both versions' answers, and the canary controller
promotes it on the feedback app's acceptance counts. Afterwards the model itself, not an
override, answers the refiled category."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from export.data.catalog import Example
from export.data.datasets import load_dataset
from tests.integration.classify_support import running_worker, text_of, wait_for
from tests.integration.feedback_support import (
    TIMEOUT_S,
    FeedbackSetup,
    create,
    dump_labels_cli,
    feedback,
    latest_answers,
    running_app,
    send,
    train_cli,
)
from workers.core.events import CategorizedEvent
from workers.inference.bundle import load_bundle
from workers.inference.model import Classifier
from workers.lifecycle.admin import ModelAdmin
from workers.lifecycle.gate import judge_corrections, read_recent_labels, top_answers
from workers.rollout.controller import CanaryController

WINDOW_S = 15  # acceptance window: moderators correct within seconds
BUCKET_S = 3


def _refiled_pair(
    rows: list[Example], classifier: Classifier
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(S, T): a category of 100-300 rows the live model answers right for most of its rows,
    and the largest category under another top level, which moderators now want S filed as."""
    sizes = Counter(r.path for r in rows)
    for source in sorted(sizes, key=lambda p: (-sizes[p], p)):
        if not 100 <= sizes[source] <= 300:
            continue
        sample = [r for r in rows if r.path == source][:50]
        answers = top_answers(classifier, [text_of(r) for r in sample])
        if sum(path == source for path in answers) >= 0.8 * len(sample):
            target = max((p for p in sizes if p[0] != source[0]), key=lambda p: (sizes[p], p))
            return source, target
    pytest.fail("no category of 100-300 rows that the test bundle answers right")


def _moderate(
    s: FeedbackSetup,
    answers: dict[str, CategorizedEvent],
    truth: dict[str, tuple[str, ...]],
) -> int:
    """A moderator's correction of every answer that differs from ``truth``; returns how many."""
    fixes = [
        feedback(pid, "moderator", truth[pid])
        for pid, answer in answers.items()
        if tuple(answer.category_path) != truth[pid]
    ]
    send(s.bootstrap, s.topics["feedback"], fixes)
    return len(fixes)


@pytest.mark.slow
def test_a_systematic_confusion_is_learnt_judged_online_and_promoted(
    make_setup: Any,
    catalog_rows: list[Example],
    classify_bundle: Path,
    data_dir: Path,
    tmp_path: Path,
) -> None:
    s: FeedbackSetup = make_setup(acceptance_window_s=WINDOW_S, acceptance_bucket_s=BUCKET_S)
    s.topics["decisions"] = s.topics["models"] + "-decisions"
    s.extra["model"] = {"bundle": None, "store": str(tmp_path / "store")}
    s.extra["rollout"] = {"min_settled": 50, "tau": 0.1}  # the effect here is large
    settings = s.settings()
    live = Classifier.from_path(classify_bundle)
    a = live.bundle.version
    source, target = _refiled_pair(catalog_rows, live)
    refiled = [r for r in catalog_rows if r.path == source]
    # half of the category is corrected now (the labels); the other half arrives later, with
    # as many products of other categories that neither model was trained on, while the
    # canary runs
    now_rows, later_rows = refiled[::2], refiled[1::2]
    known_paths = set(live.bundle.taxonomy.leaves)
    trained_on = {r.product_id for r in catalog_rows}
    unseen = [
        r
        for r in load_dataset("bigbasket", data_dir)[0]
        if r.product_id not in trained_on and r.path in known_paths and r.path != source
    ]
    others = unseen[: len(later_rows)]
    traffic = later_rows + others
    truth = {r.product_id: (target if r.path == source else r.path) for r in traffic}
    truth.update({r.product_id: target for r in now_rows})
    admin = ModelAdmin(settings, actor="loop-test")
    admin.publish(classify_bundle, live=True)

    # 1. moderators refile the products of S they see
    with running_app(settings) as fb, running_worker(settings, "w-1"):
        create(s, now_rows, tag="now")
        wait_for(lambda: len(latest_answers(s)) >= len(now_rows), TIMEOUT_S, "answers")
        corrected = _moderate(s, latest_answers(s), truth)
        wait_for(
            lambda: fb.metric("prodcat_feedback_labels_total", source="moderator") >= corrected,
            TIMEOUT_S,
            "a label per correction",
        )
    assert corrected >= 0.8 * len(now_rows)

    # 2. retrain on the catalog (without the products still to come) plus the labels; the
    # corrections gate lets it through
    later_ids = {r.product_id for r in traffic}
    catalog = [r for r in catalog_rows if r.product_id not in later_ids]
    labels_file = tmp_path / "labels.jsonl"
    assert {tuple(label.category_path) for label in dump_labels_cli(s, labels_file)} == {target}
    bundle_dir = train_cli(
        catalog, labels_file, tmp_path / "train", "--candidates", "bag", "--epochs", "4"
    )
    b = load_bundle(bundle_dir).version
    admin.publish(bundle_dir)
    recent = read_recent_labels(labels_file, live.bundle.metadata.created_at)
    gate = judge_corrections(load_bundle(bundle_dir), live.bundle, recent)
    print(f"\ncorrections gate: {gate.describe(b, a)}")
    assert gate.passed
    admin.canary(b, 0.5)

    # 3. new products arrive; the worker serves half of them with the canary; moderators
    # correct every answer that is not what they want
    with running_app(settings) as fb, running_worker(settings, "w-2"):
        create(s, traffic, tag="later")
        wait_for(
            lambda: sum(1 for pid in latest_answers(s) if pid in later_ids) >= len(traffic),
            TIMEOUT_S,
            "answers to the new products",
        )
        answers = {pid: e for pid, e in latest_answers(s).items() if pid in later_ids}
        by_version = Counter(e.model_version for e in answers.values())
        assert set(by_version) == {a, b}, by_version
        corrected = _moderate(s, answers, truth)
        wait_for(
            lambda: (
                fb.metric("prodcat_feedback_consumed_total", topic=s.topics["feedback"])
                >= corrected
            ),
            TIMEOUT_S,
            "the corrections to be counted",
        )
        time.sleep(WINDOW_S + 2 * BUCKET_S)  # every prediction's window has passed

    # 4. the controller judges on the feedback app's counts and promotes the canary
    controller = CanaryController(settings, actor="loop-controller")
    result = controller.step()
    assert result.decision is not None, result.judgement
    print(f"{result.decision.verdict}: {result.decision.reason}")
    assert result.decision.verdict == "promote"
    assert result.decision.canary.settled + result.decision.live.settled == len(traffic)
    state = admin.state().live
    assert state is not None and (state.version, state.canary_version) == (b, None)

    # 5. the promoted model itself (no override) files the refiled category's new products
    # where moderators want them
    promoted = Classifier.from_path(bundle_dir)
    decided = top_answers(promoted, [text_of(r) for r in later_rows])
    hits = sum(path == target for path in decided)
    print(f"promoted model files {hits} of {len(later_rows)} new {' > '.join(source)} products "
          f"under {' > '.join(target)}")  # fmt: skip
    assert hits >= 0.6 * len(later_rows)
