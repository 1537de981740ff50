"""What ``prodcat train`` trains on and how: every flag of the command, as one value."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from export.training.hyper import Hyper
from workers.inference.spec import FeaturizerSpec

__all__ = ["TrainConfig"]


@dataclass(frozen=True)
class TrainConfig:
    """What to train on and how. Every field is a ``prodcat train`` flag.

    ``hyper`` and ``candidates`` left as None follow from the data
    (:func:`export.training.hyper.defaults_for`); ``overrides`` (``Hyper`` field -> value,
    from flags such as ``--dim``) are applied on top of either.
    """

    data: tuple[str, ...]
    data_dir: Path
    out: Path
    candidates: tuple[str, ...] | None = None
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
    hyper: Hyper | None = None
    overrides: Mapping[str, Any] = field(default_factory=dict)
    verbose: int | None = None
