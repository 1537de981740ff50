"""workers.rollout.judge: the canary verdict does not peek itself into false wins."""

from __future__ import annotations

import math

import numpy as np
import pytest

from workers.rollout.judge import (
    ArmCounts,
    Judgement,
    JudgePolicy,
    judge,
    mixture_likelihood_ratio,
)

POLICY = JudgePolicy(alpha=0.05, tau=0.02, min_settled=200)


def _run(
    live_rate: float,
    canary_rate: float,
    policy: JudgePolicy,
    *,
    seed: int,
    look_every: int = 100,
    looks: int = 60,
) -> Judgement:
    """One canary: both arms settle ``look_every`` predictions between looks; the judge is
    asked after every batch until it decides (or the last look, which is ``expired``)."""
    rng = np.random.default_rng(seed)
    live_corrected = canary_corrected = 0
    verdict = None
    for look in range(1, looks + 1):
        live_corrected += int(rng.binomial(look_every, 1 - live_rate))
        canary_corrected += int(rng.binomial(look_every, 1 - canary_rate))
        n = look * look_every
        verdict = judge(
            ArmCounts("live", n, live_corrected),
            ArmCounts("canary", n, canary_corrected),
            policy,
            expired=look == looks,
        )
        if verdict.verdict != "continue":
            return verdict
    assert verdict is not None
    return verdict


def _naive_peeking_wins(live_rate: float, canary_rate: float, seed: int) -> bool:
    """A fixed-sample two-proportion z-test at p < 0.05, asked after every batch."""
    rng = np.random.default_rng(seed)
    a = b = 0
    for look in range(1, 61):
        a += int(rng.binomial(100, live_rate))
        b += int(rng.binomial(100, canary_rate))
        n = look * 100
        if n < POLICY.min_settled:
            continue
        pooled = (a + b) / (2 * n)
        se = math.sqrt(2 * pooled * (1 - pooled) / n)
        if se > 0 and (b - a) / n / se > 1.6449:
            return True
    return False


def test_equal_models_are_rarely_promoted_however_often_the_judge_looks() -> None:
    runs = 400
    ours = sum(_run(0.8, 0.8, POLICY, seed=s).verdict == "promote" for s in range(runs))
    naive = sum(_naive_peeking_wins(0.8, 0.8, seed=s) for s in range(runs))
    print(f"\nfalse promotions in {runs} equal canaries, 60 looks: mSPRT {ours}, naive {naive}")
    assert ours <= POLICY.alpha * runs
    # the same data, judged by a fixed-sample test at every look, wins far more often: the
    # failure this test guards against
    assert naive > 2 * POLICY.alpha * runs


def test_equal_models_are_rarely_rolled_back() -> None:
    runs = 400
    rolled = sum(_run(0.8, 0.8, POLICY, seed=1000 + s).verdict == "rollback" for s in range(runs))
    assert rolled <= POLICY.alpha * runs


def test_a_better_canary_is_promoted() -> None:
    verdicts = [_run(0.75, 0.82, POLICY, seed=s) for s in range(20)]
    assert all(v.verdict == "promote" for v in verdicts), [v.reason for v in verdicts]
    assert all(v.p_better < POLICY.alpha for v in verdicts)
    assert "better" in verdicts[0].reason and "canary" in verdicts[0].reason


def test_a_worse_canary_is_rolled_back_with_the_figures_in_the_reason() -> None:
    verdicts = [_run(0.82, 0.75, POLICY, seed=s) for s in range(20)]
    assert all(v.verdict == "rollback" for v in verdicts), [v.reason for v in verdicts]
    first = verdicts[0]
    assert first.difference < 0
    assert f"{first.canary.rate:.4f}" in first.reason
    assert f"{first.live.rate:.4f}" in first.reason


def test_no_verdict_before_both_versions_have_the_minimum() -> None:
    # a huge difference, but the canary has 150 settled predictions of the 200 needed
    result = judge(ArmCounts("v1", 5000, 500), ArmCounts("v2", 150, 0), POLICY)
    assert result.verdict == "continue"
    assert "150" in result.reason and "200" in result.reason
    assert judge(ArmCounts("v1", 5000, 500), ArmCounts("v2", 200, 0), POLICY).verdict == ("promote")


def test_too_little_evidence_at_the_limit_is_a_timeout() -> None:
    thin = judge(ArmCounts("v1", 50, 5), ArmCounts("v2", 40, 4), POLICY, expired=True)
    assert thin.verdict == "timeout"
    assert "too little evidence" in thin.reason
    close = judge(ArmCounts("v1", 1000, 200), ArmCounts("v2", 1000, 195), POLICY, expired=True)
    assert close.verdict == "timeout"
    assert "live model stays" in close.reason
    assert judge(ArmCounts("v1", 1000, 200), ArmCounts("v2", 1000, 195), POLICY).verdict == (
        "continue"
    )


def test_a_margin_promotes_an_equal_canary_but_not_a_clearly_worse_one() -> None:
    lenient = JudgePolicy(alpha=0.05, tau=0.02, min_settled=200, margin=0.02)
    equal = [_run(0.8, 0.8, lenient, seed=s, looks=150) for s in range(20)]
    assert sum(v.verdict == "promote" for v in equal) >= 18
    assert "not worse by more than 0.02" in equal[0].reason
    worse = [_run(0.8, 0.74, lenient, seed=s, looks=150).verdict for s in range(20)]
    assert "promote" not in worse


def test_likelihood_ratio_grows_with_evidence() -> None:
    small = mixture_likelihood_ratio(0.02, 1e-4, 0.02)
    large = mixture_likelihood_ratio(0.02, 1e-5, 0.02)
    assert large > small
    assert mixture_likelihood_ratio(0.0, 1e-4, 0.02) < 1.0
    with pytest.raises(ValueError, match="variance"):
        mixture_likelihood_ratio(0.01, 0.0, 0.02)


@pytest.mark.parametrize(
    ("settled", "corrected"),
    [(-1, 0), (10, 11), (10, -1)],
)
def test_impossible_counts_are_refused(settled: int, corrected: int) -> None:
    with pytest.raises(ValueError, match="model version 'v9'"):
        ArmCounts("v9", settled, corrected)


@pytest.mark.parametrize(
    "kwargs", [{"alpha": 0.0}, {"alpha": 1.0}, {"tau": 0.0}, {"min_settled": 0}, {"margin": -0.1}]
)
def test_bad_policies_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        JudgePolicy(**kwargs)  # type: ignore[arg-type]
