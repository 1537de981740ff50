"""Honest evaluation of an exported bundle, with the baseline side by side.

The test rows never met training (the split is grouped by normalized title),
thresholds were chosen on the validation rows, and predictions come from the
exported ONNX bundle through the serving code path.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from export.evaluation import metrics
from export.evaluation.report import write_report
from workers.core.product import ProductText
from workers.inference.bundle import load_bundle
from workers.inference.model import Classifier
from workers.inference.taxonomy import Decision

if TYPE_CHECKING:
    from export.training.config import TrainConfig
    from export.training.prepare import Prepared

log = logging.getLogger("prodcat.evaluate")


def classify_all(classifier: Classifier, items: Sequence[Any], batch: int = 1024) -> list[Decision]:
    out: list[Decision] = []
    for start in range(0, len(items), batch):
        out.extend(classifier.classify(items[start : start + batch]))
    return out


def backoff_summary(
    truth: Sequence[tuple[str, ...]], decisions: Sequence[Decision]
) -> dict[str, float]:
    """How the thresholds behaved: share answered at leaf level, backed off, abstained,
    and the precision of each group (an answer is right when it is a prefix of the truth)."""
    n = max(len(decisions), 1)
    leaf = [d for d in decisions if not d.needs_review]
    backed = [d for d in decisions if d.needs_review and not d.abstained]

    def precision(group: list[Decision], truths: list[tuple[str, ...]]) -> float:
        if not group:
            return 0.0
        hits = sum(1 for d, t in zip(group, truths, strict=True) if t[: len(d.path)] == d.path)
        return hits / len(group)

    leaf_truth = [t for t, d in zip(truth, decisions, strict=True) if not d.needs_review]
    back_truth = [
        t for t, d in zip(truth, decisions, strict=True) if d.needs_review and not d.abstained
    ]
    return {
        "leaf_coverage": len(leaf) / n,
        "leaf_precision": precision(leaf, leaf_truth),
        "backed_off_share": len(backed) / n,
        "backed_off_precision": precision(backed, back_truth),
        "abstained_share": sum(1 for d in decisions if d.abstained) / n,
    }


def evaluate_bundle(
    root: Path, prep: Prepared, config: TrainConfig, *, refit: bool = True
) -> dict[str, Any]:
    """Score the bundle at ``root`` on the test rows through the serving code, and the
    baseline beside it (``refit``: the model also learned from the validation rows)."""
    bundle = load_bundle(root)
    classifier = Classifier(bundle, top_k=3)
    test_items = [ProductText.of(prep.examples[i]) for i in prep.test]
    truth = [prep.examples[i].path for i in prep.test]
    decisions = classify_all(classifier, test_items)
    leaf_pred = [d.alternatives[0].path for d in decisions]
    top3 = np.array(
        [t in {a.path for a in d.alternatives} for t, d in zip(truth, decisions, strict=True)]
    )
    conf = np.array([d.alternatives[0].score for d in decisions], dtype=np.float64)
    ours = metrics.score(truth, leaf_pred, top3_hit=top3, confidence=conf)
    unseen = sum(1 for t in truth if t not in set(bundle.taxonomy.leaves))
    result: dict[str, Any] = {
        "test_rows": len(truth),
        "test_rows_with_unseen_label": unseen,
        "ours": ours.as_dict(),
        "backoff": backoff_summary(truth, decisions),
        "thresholds": bundle.thresholds.to_dict(),
        "model": bundle.metadata.model,
    }
    baseline_scores = None
    if config.baseline:
        from export.evaluation.baseline import run_baseline

        # The baseline learns from the rows the shipped model learned from: the training
        # rows, plus the validation rows when the model was refitted on them.
        fitted = list(prep.train) + (list(prep.val) if refit else [])
        known = set(bundle.taxonomy.leaves)
        fitted = [i for i in fitted if prep.examples[i].path in known]
        log.info("fitting the TF-IDF + LinearSVC baseline on the same %d rows", len(fitted))
        base = run_baseline(
            [ProductText.of(prep.examples[i]) for i in fitted],
            [prep.examples[i].path for i in fitted],
            test_items,
        )
        dec = base.decision
        order = np.argsort(-dec, axis=1)[:, :3]
        b_top3 = np.array(
            [
                t in {base.classes[j] for j in row}
                for t, row in zip(truth, order.tolist(), strict=True)
            ]
        )
        baseline_scores = metrics.score(
            truth, base.predictions, top3_hit=b_top3, confidence=dec.max(axis=1)
        )
        result["baseline"] = baseline_scores.as_dict()
        result["baseline"]["fit_seconds"] = round(base.fit_seconds, 1)
    write_report(
        root / "report",
        title=f"prodcat evaluation: {bundle.version}",
        result=result,
        truth=truth,
        leaf_pred=leaf_pred,
        confidence=conf,
        baseline_pred=base.predictions if config.baseline else None,
    )
    return result
