"""Training hyper-parameters and the candidate architectures' names.

Kept apart from :mod:`export.training.networks` so that configuring a run (the CLI, the
dataset registry's defaults) does not import TensorFlow.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

ARCHITECTURES = ("fasttext", "twotower", "charcnn")
#: What ``prodcat train`` tries when neither ``--candidates`` nor the dataset's
#: registry entry (:class:`export.data.datasets.TrainDefaults`) names candidates.
DEFAULT_CANDIDATES = ("fasttext", "twotower")


def parse_candidate(name: str) -> tuple[str, int]:
    """``"fasttext"`` -> ``("fasttext", 0)``; ``"fasttext@1"`` -> ``("fasttext", 1)``: the
    same architecture trained with the run's seed plus 1 (for seed ensembles).
    Raises ValueError for an unknown architecture or a bad offset."""
    arch, at, offset = name.partition("@")
    if arch not in ARCHITECTURES or (at and not offset.isdigit()):
        raise ValueError(name)
    return arch, int(offset or 0)


@dataclass(frozen=True)
class Hyper:
    """One candidate's settings (``filters`` and ``kernel`` are the charcnn convolution's)."""

    architecture: str = "fasttext"
    dim: int = 64
    hidden: int = 512
    dropout: float = 0.5
    learning_rate: float = 1e-2
    batch_size: int = 128
    max_epochs: int = 20
    patience: int = 3
    class_weight_power: float = 0.5
    label_smoothing: float = 0.0
    filters: int = 128
    kernel: int = 3

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
