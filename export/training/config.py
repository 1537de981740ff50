"""What ``prodcat train`` trains on and how: every flag of the command, as one value."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from export.training.hyper import DEFAULT_CANDIDATES, Hyper
from workers.inference.spec import FeaturizerSpec

__all__ = ["TrainConfig"]


@dataclass(frozen=True)
class TrainConfig:
    """What to train on and how. Every field is a ``prodcat train`` flag."""

    data: tuple[str, ...]
    data_dir: Path
    out: Path
    candidates: tuple[str, ...] = DEFAULT_CANDIDATES
    seed: int = 0
    test_frac: float = 0.2
    val_frac: float = 0.1
    limit: int | None = None
    max_epochs: int | None = None
    target_precision: float = 0.9
    baseline: bool = True
    labels: tuple[Path, ...] = ()
    version: str | None = None
    spec: FeaturizerSpec = field(default_factory=FeaturizerSpec)
    hyper: Hyper = field(default_factory=Hyper)
    verbose: int | None = None
