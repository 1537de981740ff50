"""Training hyper-parameters and the candidate architectures' names.

Kept apart from :mod:`export.networks` so that configuring a run (the CLI, the
dataset registry's defaults) does not import TensorFlow.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

ARCHITECTURES = ("fasttext", "twotower", "charcnn")
#: What ``prodcat train`` tries when neither ``--candidates`` nor the dataset's
#: registry entry (:class:`export.datasets.TrainDefaults`) names candidates.
DEFAULT_CANDIDATES = ("fasttext", "twotower")


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
    filters: int = 128
    kernel: int = 3

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
