"""Training hyper-parameters, the candidate architectures, and the defaults that follow from
the data.

Kept apart from :mod:`export.training.networks` so that configuring a run (the CLI, the
learning-curve bench) does not import TensorFlow.

Defaults are chosen by rule from what the training data looks like (:class:`DataShape`:
rows, leaf categories, depth, share of Chinese/Japanese/Thai text), never from a dataset's
name: a user's catalog is not in the registry. The rules and the measurements behind them
are in :func:`defaults_for`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

__all__ = [
    "ARCHITECTURES",
    "DataShape",
    "Hyper",
    "defaults_for",
    "parse_candidate",
]

#: ``bag``: IDF-weighted, L2-normalised embedding bags with learned per-id weights (the
#: default); ``fasttext``: plain mean of the embeddings (the fastText recipe).
ARCHITECTURES = ("bag", "fasttext")


def parse_candidate(name: str) -> tuple[str, int]:
    """``"bag"`` -> ``("bag", 0)``; ``"bag@1"`` -> ``("bag", 1)``: the same architecture
    trained with the run's seed plus 1 (for seed ensembles).
    Raises ValueError for an unknown architecture or a bad offset."""
    arch, at, offset = name.partition("@")
    if arch not in ARCHITECTURES or (at and not offset.isdigit()):
        raise ValueError(name)
    return arch, int(offset or 0)


@dataclass(frozen=True)
class Hyper:
    """One candidate's settings.

    Schedule: with ``epochs`` None, early stopping on the validation split (``patience``,
    at most ``max_epochs``); else ``epochs`` epochs with the learning rate falling linearly,
    validation accuracy watched to find the best epoch.

    ``refit``: then train again on train + validation rows (the validation rows are a
    tenth of the data, and a small catalog needs them): early stopping's best epoch times
    ``refit_epochs`` epochs, or the fixed schedule up to its best epoch times
    ``refit_epochs`` (at most ``epochs``).
    """

    architecture: str = "bag"
    dim: int = 64
    dropout: float = 0.5
    learning_rate: float = 3e-3
    batch_size: int = 128
    max_epochs: int = 40
    patience: int = 3
    class_weight_power: float = 0.5
    label_smoothing: float = 0.0
    epochs: int | None = None
    refit: bool = True
    refit_epochs: float = 1.2

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class DataShape:
    """What the defaults look at: training rows, leaf categories, taxonomy depth, and the
    share of rows whose title is mostly in a script written without spaces (Chinese...)."""

    rows: int
    classes: int
    depth: int
    run_script_share: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def defaults_for(shape: DataShape) -> tuple[Hyper, tuple[str, ...], list[str]]:
    """The hyper-parameters and candidates for data of this shape, with the reasons.

    Returns ``(hyper, candidates, reasons)``; explicit ``prodcat train`` flags override
    each. The rules (measured on 80/20 grouped splits of the shared catalogs and of
    catalogs cut from them; ``bench/learning_curve.py`` reproduces the figures):

    * learning rate: fewer rows need a larger step to train in few updates; it falls
      log-linearly from 8e-3 at 2,000 training rows to 2e-3 at 50,000 and more.
    * batch: 128, 256 from 50,000 rows (halves the number of steps; same accuracy).
    * members: two seeds of the ``bag`` network, averaged when that scores better on
      validation (it usually does, by 0.2-0.5 points), up to 60,000 training rows;
      above that one network (the gain shrinks while the time doubles).
    """
    reasons: list[str] = []
    rows = max(shape.rows, 1)
    lo, hi = math.log(2_000), math.log(50_000)
    t = min(max((math.log(rows) - lo) / (hi - lo), 0.0), 1.0)
    lr = math.exp(math.log(8e-3) + t * (math.log(2e-3) - math.log(8e-3)))
    reasons.append(f"learning rate {lr:.4f} for {shape.rows} training rows")
    batch = 256 if shape.rows >= 50_000 else 128
    if batch != 128:
        reasons.append(f"batch {batch} for {shape.rows} training rows")
    if shape.rows <= 60_000:
        candidates: tuple[str, ...] = ("bag", "bag@1")
        reasons.append("two seeds, averaged if that scores better on validation")
    else:
        candidates = ("bag",)
        reasons.append("one network above 60,000 training rows")
    hyper = Hyper(learning_rate=round(lr, 5), batch_size=batch)
    return hyper, candidates, reasons
