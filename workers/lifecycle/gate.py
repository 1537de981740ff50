"""The promotion gate: a candidate may not go live when it is clearly worse than the live one.

Both bundles must be judged on the *same* held-out rows:

* with ``--holdout FILE`` (CSV or JSONL with ``category_path``, like ``prodcat train``'s
  generic catalog files), both bundles classify the file through the serving path
  (:meth:`workers.inference.model.Classifier.classify`, no TensorFlow) and are scored there;
* without it, the figures stored in the bundles are compared, but only when both were
  evaluated on the same split: the same data fingerprint, split seed and test fraction.
  Otherwise the gate cannot judge and refuses, asking for ``--holdout`` or ``--force``.

A second gate, :func:`judge_corrections`, looks at what a retrained model was retrained
*for*: the recent corrections (labels written after the live bundle was made). Among those
the live model answers wrong, the candidate must answer at least ``min_share`` right
(``prodcat models gate --labels FILE``).

The score is the leaf-level weighted F1 (``PRODCAT_MODEL_GATE_METRIC`` picks another
stored figure, e.g. ``accuracy``, for the stored-figures route). A candidate whose score is
lower than the live one's by more than ``PRODCAT_MODEL_GATE_TOLERANCE`` is refused, and the
refusal says by how much.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from workers.core.codec import Codec
from workers.core.errors import InvalidEventError, ProdcatError
from workers.core.events import LabelEvent
from workers.core.product import ProductText
from workers.core.records import RecordError, read_products
from workers.inference.bundle import Bundle
from workers.inference.model import Classifier
from workers.inference.scores import weighted_f1

__all__ = [
    "CorrectionsResult",
    "GateRefusedError",
    "GateResult",
    "Holdout",
    "HoldoutScore",
    "judge",
    "judge_corrections",
    "read_holdout",
    "read_recent_labels",
    "score_holdout",
    "top_answers",
]

Path_ = tuple[str, ...]


class GateRefusedError(ProdcatError):
    """The candidate is worse than the live version by more than the tolerance."""


@dataclass(frozen=True, slots=True)
class HoldoutScore:
    weighted_f1: float
    accuracy: float
    rows: int


@dataclass(frozen=True, slots=True)
class GateResult:
    """How the candidate compares with the live version, and on what."""

    metric: str
    candidate: float
    live: float
    basis: str  # what both were scored on
    tolerance: float

    @property
    def drop(self) -> float:
        return self.live - self.candidate

    @property
    def passed(self) -> bool:
        return self.drop <= self.tolerance + 1e-12

    def describe(self, candidate: str, live: str) -> str:
        verb = "above" if self.drop < 0 else "below"
        return (
            f"{candidate} {self.metric} {self.candidate:.4f} is {abs(self.drop):.4f} {verb} "
            f"live {live} ({self.live:.4f}) on {self.basis}; tolerance {self.tolerance:g}"
        )


@dataclass(frozen=True)
class Holdout:
    """Labelled held-out rows, read once (publish smoke-tests on them and gates with them)."""

    path: Path
    items: list[ProductText]
    truth: list[Path_]


def read_holdout(path: Path) -> Holdout:
    """Products and their true category paths from a labelled CSV/JSONL file, read as
    ``prodcat train`` reads catalog files (:func:`workers.core.records.read_products`)."""
    items: list[ProductText] = []
    truth: list[Path_] = []
    for row in read_products(path, labelled=True):
        assert row.category_path is not None  # labelled rows have one
        items.append(row.text)
        truth.append(row.category_path)
    if not items:
        raise RecordError(path, "no rows: the file holds no products")
    return Holdout(path, items, truth)


def score_holdout(
    classifier: Classifier, items: list[ProductText], truth: list[Path_]
) -> HoldoutScore:
    """Leaf-level weighted F1 and accuracy of the top answer (before any back-off)."""
    pred = top_answers(classifier, items)
    hits = sum(1 for t, p in zip(truth, pred, strict=True) if t == p)
    return HoldoutScore(weighted_f1(truth, pred), hits / len(truth), len(truth))


def _split_of(bundle: Bundle) -> tuple[str, int, float] | None:
    data = bundle.metadata.data
    if data is None or not data.fingerprint:
        return None
    return (data.fingerprint, data.split.seed, data.split.test_frac)


def _stored(bundle: Bundle, metric: str) -> float | None:
    evaluation = bundle.evaluation
    value = evaluation.ours.get(metric) if evaluation is not None else None
    return float(value) if isinstance(value, int | float) else None


def judge(
    candidate: Bundle,
    live: Bundle,
    *,
    tolerance: float,
    metric: str = "weighted_f1",
    holdout: Holdout | None = None,
) -> GateResult:
    """Score both bundles on the same held-out rows (see the module docstring)."""
    if holdout is not None:
        scores = [
            score_holdout(Classifier(b, top_k=1), holdout.items, holdout.truth).weighted_f1
            for b in (candidate, live)
        ]
        return GateResult(
            "weighted_f1",
            scores[0],
            scores[1],
            f"{len(holdout.items)} rows of {holdout.path}",
            tolerance,
        )
    split_c, split_l = _split_of(candidate), _split_of(live)
    if split_c is None or split_c != split_l:
        raise GateRefusedError(
            f"cannot compare {candidate.version} with live {live.version}: they were evaluated "
            "on different held-out sets (data fingerprint, split seed or test fraction differ); "
            "pass --holdout FILE to score both on the same rows, or --force"
        )
    ours_c, ours_l = _stored(candidate, metric), _stored(live, metric)
    if ours_c is None or ours_l is None:
        missing = candidate.version if ours_c is None else live.version
        raise GateRefusedError(
            f"bundle {missing} has no stored evaluation figure {metric!r} "
            "(PRODCAT_MODEL_GATE_METRIC); pass --holdout FILE, or --force"
        )
    basis = f"their shared test split (data {str(split_c[0])[:12]}, seed {split_c[1]})"
    return GateResult(metric, ours_c, ours_l, basis, tolerance)


@dataclass(frozen=True, slots=True)
class CorrectionsResult:
    """How the candidate answers the recent corrections the live model got wrong."""

    rows: int
    live_wrong: int
    fixed: int
    broken: int
    """Corrections the live model answered right and the candidate does not."""
    min_share: float

    @property
    def share(self) -> float:
        return self.fixed / self.live_wrong if self.live_wrong else 1.0

    @property
    def passed(self) -> bool:
        return self.live_wrong == 0 or self.share >= self.min_share - 1e-12

    def describe(self, candidate: str, live: str) -> str:
        if self.rows == 0:
            return "no recent corrections to check"
        return (
            f"of {self.rows} recent corrections live {live} answers {self.live_wrong} wrong; "
            f"{candidate} answers {self.fixed} of those right ({self.share:.1%}, "
            f"{self.min_share:.0%} needed) and gets {self.broken} wrong that live got right"
        )


def read_recent_labels(path: Path, since: datetime | None) -> Holdout:
    """The labels of a ``prodcat labels dump`` file written after ``since`` (all with None),
    as rows to score; an empty file or no recent label gives no rows."""
    codec = Codec(1 << 20)
    items: list[ProductText] = []
    truth: list[Path_] = []
    for number, line in enumerate(path.read_bytes().splitlines(), 1):
        if not line.strip():
            continue
        try:
            label = codec.decode(line, LabelEvent)
        except InvalidEventError as exc:
            raise RecordError(
                path,
                f"not a category.label event ({exc}); write the file with prodcat labels dump",
                line=number,
            ) from exc
        if since is None or label.label_time > since:
            items.append(ProductText.of(label))
            truth.append(tuple(label.category_path))
    return Holdout(path, items, truth)


def top_answers(classifier: Classifier, items: list[ProductText]) -> list[Path_]:
    """Each item's top leaf before any back-off, classified 1,024 at a time."""
    out: list[Path_] = []
    for start in range(0, len(items), 1024):
        for d in classifier.classify(items[start : start + 1024]):
            out.append(d.alternatives[0].path if d.alternatives else d.path)
    return out


def judge_corrections(
    candidate: Bundle, live: Bundle, labels: Holdout, *, min_share: float = 0.5
) -> CorrectionsResult:
    """Classify the corrected products with both bundles (see the module docstring)."""
    if not labels.items:
        return CorrectionsResult(0, 0, 0, 0, min_share)
    by_live = top_answers(Classifier(live, top_k=1), labels.items)
    by_candidate = top_answers(Classifier(candidate, top_k=1), labels.items)
    live_wrong = fixed = broken = 0
    for truth, old, new in zip(labels.truth, by_live, by_candidate, strict=True):
        if old != truth:
            live_wrong += 1
            fixed += new == truth
        elif new != truth:
            broken += 1
    return CorrectionsResult(len(labels.items), live_wrong, fixed, broken, min_share)
