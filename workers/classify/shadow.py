"""Shadow mode: a candidate version classifies the live version's batches; only compared.

The classify worker calls :func:`compare_shadow` on its model thread after the live call,
with the batch's distinct live-served texts (overrides excluded) and the live answers
(from the model or the cache). Nothing the shadow says is published or cached. It records,
labelled by both versions:

* ``prodcat_shadow_compared_total`` / ``prodcat_shadow_agreed_total``: texts compared and
  texts where both chose the same ``category_id`` (agreement rate = agreed / compared);
* ``prodcat_shadow_confidence_shift``: shadow confidence minus live confidence;
* ``prodcat_model_batch_seconds{role="shadow"}``: the shadow's time per batch, beside the
  live version's ``role="live"`` series.

A shadow that fails on a batch is counted (``prodcat_shadow_errors_total``) and logged;
the live outputs never wait on it beyond its own run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from workers.classify.categorized import DecisionJSON
from workers.core.events import ProductEvent
from workers.core.overrides import Override
from workers.core.product import ProductText
from workers.inference.featurizer import PreparedText
from workers.inference.model import Classifier
from workers.inference.taxonomy import Decision
from workers.lifecycle.metrics import LifecycleMetrics

__all__ = ["ShadowJob", "ShadowTally", "compare_shadow", "tally"]

log = logging.getLogger(__name__)


class ShadowTally:
    """Agreement of one compared batch."""

    __slots__ = ("agreed", "compared", "shifts")

    def __init__(self) -> None:
        self.compared = 0
        self.agreed = 0
        self.shifts: list[float] = []


def tally(
    shadow: Sequence[Decision], live: Sequence[Decision | DecisionJSON | None]
) -> ShadowTally:
    """Compare answers pairwise; items without a live answer (the live model failed) are
    skipped."""
    out = ShadowTally()
    for s, answer in zip(shadow, live, strict=True):
        if answer is None:
            continue
        out.compared += 1
        if s.category_id == answer.category_id:
            out.agreed += 1
        out.shifts.append(s.confidence - answer.confidence)
    return out


def compare_shadow(
    shadow: Classifier,
    live_version: str,
    texts: list[PreparedText],
    live: Sequence[Decision | DecisionJSON | None],
    metrics: LifecycleMetrics,
) -> ShadowTally | None:
    """Classify ``texts`` with the shadow and record how it compares with ``live``."""
    t0 = time.perf_counter()
    try:
        decisions = shadow.classify_prepared(texts)
    except Exception as exc:  # the shadow must never break serving
        metrics.shadow_errors.labels(shadow.version).inc()
        log.warning(
            "shadow model %s failed on a batch of %d (%s: %s); live outputs are unaffected",
            shadow.version,
            len(texts),
            type(exc).__name__,
            exc,
        )
        return None
    metrics.model_seconds.labels(shadow.version, "shadow").observe(time.perf_counter() - t0)
    result = tally(decisions, live)
    labels = (live_version, shadow.version)
    metrics.shadow_compared.labels(*labels).inc(result.compared)
    metrics.shadow_agreed.labels(*labels).inc(result.agreed)
    observe = metrics.shadow_confidence_shift.labels(*labels).observe
    for shift in result.shifts:
        observe(shift)
    return result


@dataclass(slots=True)
class ShadowJob:
    """One batch's comparison: the live group's distinct texts (overrides excluded), the live
    answers already known (cache hits) and where the others will come from (model misses)."""

    classifier: Classifier
    live_version: str
    texts: list[PreparedText]
    answers: list[Decision | DecisionJSON | None]  # None: the live model answers it now
    pending: list[tuple[int, int]]  # (slot, position among the live group's distinct misses)

    @classmethod
    def build(
        cls,
        shadow: Classifier,
        live: Classifier,
        events: Sequence[ProductEvent],
        texts: Sequence[PreparedText],
        hashes: Sequence[str],
        answers: Sequence[Decision | DecisionJSON | Override | None],
        misses: Mapping[str, list[int]],
    ) -> ShadowJob | None:
        """From the live group's items (parallel sequences); ``misses`` is the group's
        content hash -> items map, in the order the live model gets them."""
        same_spec = shadow.featurizer.spec == live.featurizer.spec
        prepare = shadow.featurizer.prepare
        miss_pos = {h: pos for pos, h in enumerate(misses)}
        seen: set[str] = set()
        job = cls(shadow, live.version, [], [], [])
        for k, h in enumerate(hashes):
            answer = answers[k]
            if h in seen or isinstance(answer, Override):
                continue
            seen.add(h)
            if same_spec:
                job.texts.append(texts[k])
            else:
                e = events[k]
                job.texts.append(prepare(ProductText.of(e)))
            if answer is None:
                job.pending.append((len(job.answers), miss_pos[h]))
            job.answers.append(answer)
        return job if job.texts else None

    def run(self, live_decided: Sequence[DecisionJSON | None], metrics: LifecycleMetrics) -> None:
        """Fill in the live model's answers, then classify with the shadow and record."""
        answers = self.answers
        for slot, pos in self.pending:
            answers[slot] = live_decided[pos] if pos < len(live_decided) else None
        compare_shadow(self.classifier, self.live_version, self.texts, answers, metrics)
