"""Online judgement of a canary against the live model: an always-valid sequential test.

A canary serves a share of the products; the feedback app counts, per model version, the
predictions whose acceptance window has passed ("settled") and how many of them were
corrected (:mod:`workers.feedback.quality`). A controller looks at those counts again and
again while the canary runs. Looking repeatedly with a fixed-sample test (a z-test at
p < 0.05 after every batch of feedback) declares a winner far more often than 5% of the time
when the two models are equally good: it peeks itself into false wins.

:func:`judge` uses a mixture sequential probability ratio test (mSPRT; Robbins 1970, Johari
et al. 2017) on the difference of the two acceptance rates, with the normal approximation
and a normal mixture of scale ``tau`` over the effect size. Its likelihood ratio ``L_n``
satisfies ``P(L_n >= 1/alpha for some n) <= alpha`` under the null hypothesis, however often
and whenever it is evaluated, so a controller may look after every feedback event, restart,
and look again: the decision only depends on the cumulative counts.

Two one-sided questions are asked of the difference ``d = canary rate - live rate``:

* **promote** when the data reject ``d <= -margin`` (the canary is not worse than the live
  model by more than ``margin``; ``margin = 0`` asks for evidence that it is better);
* **roll back** when the data reject ``d >= 0`` (evidence that the canary is worse).

Neither is decided before both versions have ``min_settled`` settled predictions. When the
caller says the canary has run out of time (or samples) without either, the verdict is
``timeout``: the live model stays, and the decision record says that the evidence was too
thin. Pure logic: no clocks, no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

__all__ = [
    "ArmCounts",
    "JudgePolicy",
    "Judgement",
    "Verdict",
    "judge",
    "mixture_likelihood_ratio",
]

Verdict = Literal["promote", "rollback", "continue", "timeout"]


@dataclass(frozen=True, slots=True)
class ArmCounts:
    """Settled predictions of one model version and how many of them were corrected."""

    version: str
    settled: int
    corrected: int

    def __post_init__(self) -> None:
        if self.settled < 0 or not 0 <= self.corrected <= self.settled:
            raise ValueError(
                f"counts of model version {self.version!r}: need 0 <= corrected "
                f"({self.corrected}) <= settled ({self.settled})"
            )

    @property
    def accepted(self) -> int:
        return self.settled - self.corrected

    @property
    def rate(self) -> float:
        """Acceptance rate; 0 without settled predictions."""
        return self.accepted / self.settled if self.settled else 0.0


@dataclass(frozen=True, slots=True)
class JudgePolicy:
    """How much evidence a verdict needs.

    ``alpha`` bounds the chance of each wrong verdict (promoting a canary that is worse than
    the live model by more than ``margin``; rolling back one that is not worse) over the whole
    canary, however often it is judged. ``tau`` is the effect size (difference of acceptance
    rates) the test is most sensitive to; ``min_settled`` the settled predictions each version
    needs before any verdict (the normal approximation needs them too).
    """

    alpha: float = 0.05
    margin: float = 0.0
    tau: float = 0.02
    min_settled: int = 200

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha}")
        if not 0.0 <= self.margin < 1.0:
            raise ValueError(f"margin must be in [0, 1), got {self.margin}")
        if not self.tau > 0.0:
            raise ValueError(f"tau must be positive, got {self.tau}")
        if self.min_settled < 1:
            raise ValueError(f"min_settled must be at least 1, got {self.min_settled}")

    @property
    def test_name(self) -> str:
        return (
            f"mSPRT normal mixture (alpha={self.alpha:g}, tau={self.tau:g}, margin={self.margin:g})"
        )


@dataclass(frozen=True, slots=True)
class Judgement:
    """A verdict with the figures it rests on (what a decision record carries)."""

    verdict: Verdict
    reason: str
    test: str
    live: ArmCounts
    canary: ArmCounts
    difference: float
    std_error: float
    ratio_better: float
    ratio_worse: float

    @property
    def p_better(self) -> float:
        """Always-valid p-value of "the canary is worse by more than the margin"."""
        return min(1.0, 1.0 / self.ratio_better) if self.ratio_better > 0 else 1.0

    @property
    def p_worse(self) -> float:
        """Always-valid p-value of "the canary is not worse"."""
        return min(1.0, 1.0 / self.ratio_worse) if self.ratio_worse > 0 else 1.0


def mixture_likelihood_ratio(effect: float, variance: float, tau: float) -> float:
    """mSPRT likelihood ratio of an observed ``effect`` (estimate minus the null value) with
    sampling ``variance``, under a normal mixture of scale ``tau`` centred on the null."""
    if variance <= 0.0:
        raise ValueError(f"variance must be positive, got {variance}")
    tau2 = tau * tau
    log_ratio = 0.5 * math.log(variance / (variance + tau2)) + (tau2 * effect * effect) / (
        2.0 * variance * (variance + tau2)
    )
    return math.exp(min(log_ratio, 700.0))


def _smoothed(arm: ArmCounts) -> float:
    # keeps the variance above zero when a version has no (or only) corrections
    return (arm.accepted + 0.5) / (arm.settled + 1.0)


def judge(
    live: ArmCounts, canary: ArmCounts, policy: JudgePolicy, *, expired: bool = False
) -> Judgement:
    """Judge ``canary`` against ``live`` on their cumulative counts.

    ``expired`` says that the canary has run as long (or as many predictions) as it may; a
    canary without a verdict by then gets ``timeout``.
    """
    difference = canary.rate - live.rate
    if min(live.settled, canary.settled) < policy.min_settled:
        figures = Judgement(
            "continue", "", policy.test_name, live, canary, difference, math.nan, 0.0, 0.0
        )
        short = (
            f"too little evidence: {live.settled} settled predictions of the live model "
            f"{live.version} and {canary.settled} of the canary {canary.version}, "
            f"{policy.min_settled} each needed"
        )
        if expired:
            return replace(figures, verdict="timeout", reason=short)
        return replace(figures, verdict="continue", reason=f"waiting: {short}")

    p_live, p_canary = _smoothed(live), _smoothed(canary)
    variance = p_live * (1 - p_live) / live.settled + p_canary * (1 - p_canary) / canary.settled
    ratio_better = (
        mixture_likelihood_ratio(difference + policy.margin, variance, policy.tau)
        if difference + policy.margin > 0
        else 0.0
    )
    ratio_worse = (
        mixture_likelihood_ratio(difference, variance, policy.tau) if difference < 0 else 0.0
    )
    figures = Judgement(
        "continue",
        "",
        policy.test_name,
        live,
        canary,
        difference,
        math.sqrt(variance),
        ratio_better,
        ratio_worse,
    )
    threshold = 1.0 / policy.alpha
    rates = (
        f"acceptance {canary.rate:.4f} of the canary {canary.version} ({canary.settled} settled) "
        f"vs {live.rate:.4f} of the live model {live.version} ({live.settled} settled)"
    )
    if ratio_worse >= threshold:
        return replace(
            figures,
            verdict="rollback",
            reason=f"canary worse: {rates}; always-valid p = {figures.p_worse:.4g} "
            f"< {policy.alpha:g}",
        )
    if ratio_better >= threshold:
        claim = "better" if policy.margin == 0 else f"not worse by more than {policy.margin:g}"
        return replace(
            figures,
            verdict="promote",
            reason=f"canary {claim}: {rates}; always-valid p = {figures.p_better:.4g} "
            f"< {policy.alpha:g}",
        )
    if expired:
        return replace(
            figures,
            verdict="timeout",
            reason=f"no verdict before the canary's limit: {rates}; the live model stays",
        )
    return replace(figures, verdict="continue", reason=f"undecided: {rates}")
