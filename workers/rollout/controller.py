"""The canary controller behind ``prodcat models judge``: judge the live pointer's canary on
the feedback app's online evidence, then promote it or stop it, and record why.

One step (:meth:`CanaryController.step`):

1. read the control topic; nothing to do without a live version with a canary;
2. read the decisions topic: a decision already recorded for this canary (on the evidence
   since the same pointer change) is carried out (a controller that crashed between
   recording and acting finishes the job) and never taken again. A canary set again later
   is a new trial and gets a new decision under the same key;
3. read the evidence since the live pointer last changed (the moment the canary was set),
   judge it (:func:`workers.rollout.judge.judge`; ``timeout`` once the canary is older than
   ``PRODCAT_ROLLOUT_MAX_DURATION_S``); ``continue`` ends the step;
4. record the ``model.decision`` (acknowledged by the broker), *then* act: ``promote`` makes
   the canary live (``prodcat models promote --force``: the online verdict outranks the stored
   offline figures, which the candidate passed when it was published); ``rollback`` and
   ``timeout`` switch the canary off, and the live version stays.

Everything the controller knows lives in Kafka, so it keeps no state of its own: run it as a
long-running process (``prodcat models judge``) or as a periodic job (``--once``); two
controllers at once are harmless but pointless (each decision is keyed by its candidate).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import Producer

from workers.core.codec import Codec
from workers.core.errors import InvalidEventError, ServiceUnavailableError
from workers.core.events import ModelDecisionEvent, ModelLiveEvent, VersionOutcome, message_key
from workers.core.settings import Settings
from workers.kafka.acked import produce_acknowledged
from workers.kafka.clients import admin_config, writer_config
from workers.kafka.snapshot import newest_per_key, read_topic
from workers.kafka.topics import ensure_topics, topic_specs
from workers.lifecycle.admin import ModelAdmin
from workers.rollout.evidence import Evidence, read_evidence
from workers.rollout.judge import Judgement, JudgePolicy, judge

__all__ = ["CanaryController", "StepResult", "policy_from", "read_decisions"]

log = logging.getLogger(__name__)

DECISION_PARTITION = 0


def policy_from(settings: Settings) -> JudgePolicy:
    r = settings.rollout
    return JudgePolicy(alpha=r.alpha, margin=r.margin, tau=r.tau, min_settled=r.min_settled)


def read_decisions(settings: Settings, *, timeout_s: float = 15.0) -> dict[str, ModelDecisionEvent]:
    """Candidate version -> its recorded decision."""
    codec = Codec()
    out: dict[str, ModelDecisionEvent] = {}
    topic = settings.topics.decisions
    records = newest_per_key(
        read_topic(settings.kafka, topic, "rollout-decisions", timeout_s=timeout_s)
    )
    for key, record in records.items():
        assert record.value is not None
        try:
            decision = codec.decode(record.value, ModelDecisionEvent)
        except InvalidEventError as exc:
            log.error("decisions topic %s offset %d (key %r): unreadable record skipped (%s)",
                      topic, record.offset, key, exc)  # fmt: skip
            continue
        out[decision.candidate_version] = decision
    return out


@dataclass(frozen=True, slots=True)
class StepResult:
    """What one step saw and did."""

    live: str | None
    canary: str | None
    judgement: Judgement | None = None
    decision: ModelDecisionEvent | None = None
    acted: str | None = None
    """What the controller changed on the control topic in this step (None: nothing)."""


class CanaryController:
    """Judges canaries; see the module docstring."""

    def __init__(
        self,
        settings: Settings,
        *,
        admin: ModelAdmin | None = None,
        actor: str = "prodcat-canary-controller",
        clock: Callable[[], float] = time.time,
        timeout_s: float = 30.0,
    ) -> None:
        self.settings = settings
        self.policy = policy_from(settings)
        self.actor = actor
        self.admin = admin if admin is not None else ModelAdmin(settings, actor=actor)
        self.clock = clock
        self.timeout_s = timeout_s
        self._codec = Codec()
        self._producer: Any = None
        self._stop = threading.Event()

    # ------------------------------------------------------------------ one judgement

    def step(self) -> StepResult:
        state = self.admin.state()
        live = state.live
        if live is None or live.canary_version is None:
            return StepResult(live.version if live else None, None)
        canary = live.canary_version
        recorded = read_decisions(self.settings, timeout_s=self.timeout_s).get(canary)
        # A decision on the evidence since this very pointer change is this trial's; an older
        # one belongs to an earlier canary of the same version (set again by an operator).
        if recorded is not None and recorded.evidence_since == live.changed_at:
            return StepResult(live.version, canary, decision=recorded,
                              acted=self._carry_out(recorded, live))  # fmt: skip
        now = self.clock()
        since = live.changed_at.timestamp()
        evidence = read_evidence(self.settings, since=since, now=now, timeout_s=self.timeout_s)
        expired = now - since >= self.settings.rollout.max_duration_s
        judgement = judge(
            evidence.arm(live.version), evidence.arm(canary), self.policy, expired=expired
        )
        if judgement.verdict == "continue":
            log.info("canary %s: %s", canary, judgement.reason)
            return StepResult(live.version, canary, judgement=judgement)
        decision = self._decision(judgement, evidence, live.changed_at)
        self._record(decision)
        log.warning("canary %s: %s: %s", canary, decision.verdict, decision.reason)
        return StepResult(
            live.version, canary, judgement, decision, self._carry_out(decision, live)
        )

    def _decision(
        self, judgement: Judgement, evidence: Evidence, since: datetime
    ) -> ModelDecisionEvent:
        verdict = judgement.verdict
        assert verdict != "continue"
        if verdict == "promote":
            p = judgement.p_better
        elif verdict == "rollback":
            p = judgement.p_worse
        else:
            p = min(judgement.p_better, judgement.p_worse)
        difference = 0.0 if math.isnan(judgement.difference) else judgement.difference
        return ModelDecisionEvent(
            event_type="model.decision",
            candidate_version=judgement.canary.version,
            live_version=judgement.live.version,
            verdict=verdict,
            reason=judgement.reason[:500],
            test=judgement.test[:200],
            alpha=self.policy.alpha,
            margin=self.policy.margin,
            live=_outcome(judgement.live.version, evidence),
            canary=_outcome(judgement.canary.version, evidence),
            difference=max(-1.0, min(1.0, difference)),
            p_value=max(0.0, min(1.0, p)),
            evidence_since=since,
            decided_at=datetime.fromtimestamp(evidence.now, UTC),
            decided_by=self.actor,
        )

    def _carry_out(self, decision: ModelDecisionEvent, live: ModelLiveEvent) -> str | None:
        """Make the control topic say what ``decision`` decided; None when it already does."""
        candidate = decision.candidate_version
        if live.canary_version != candidate:
            return None
        if decision.verdict == "promote":
            if live.version == candidate:
                return None
            return self.admin.promote(candidate, force=True)
        return self.admin.canary(None, 0.0)

    # ------------------------------------------------------------------ records

    def _record(self, decision: ModelDecisionEvent) -> None:
        topic = self.settings.topics.decisions
        if self._producer is None:
            ensure_topics(
                admin_config(self.settings.kafka),
                [s for s in topic_specs(self.settings) if s.name == topic],
                self.timeout_s,
            )
            self._producer = Producer(writer_config(self.settings.kafka, "rollout-decisions"))
        checked = self._codec.check(decision)
        produce_acknowledged(
            self._producer,
            topic,
            self._codec.encode(checked),
            message_key(checked),
            partition=DECISION_PARTITION,
            timeout_s=self.timeout_s,
            consequence="nothing was changed: the next step judges again",
        )

    # ------------------------------------------------------------------ the loop

    def start(self) -> None:
        """Nothing to open up front: each step reads Kafka afresh."""

    def run(self) -> None:
        """Step every ``PRODCAT_ROLLOUT_INTERVAL_S`` until :meth:`request_stop`; a step that
        cannot reach Kafka is logged and tried again at the next interval."""
        while not self._stop.is_set():
            try:
                result = self.step()
            except ServiceUnavailableError as exc:
                log.error("canary controller step failed, retrying: %s", exc)
            else:
                if result.acted:
                    log.info("canary controller: %s", result.acted)
            self._stop.wait(self.settings.rollout.interval_s)

    def request_stop(self) -> None:
        self._stop.set()

    def stop(self) -> None:
        if self._producer is not None:
            self._producer.flush(self.timeout_s)
            self._producer = None


def _outcome(version: str, evidence: Evidence) -> VersionOutcome:
    arm = evidence.arm(version)
    return VersionOutcome(version=version, settled=arm.settled, corrected=arm.corrected)
