"""A batch as the pipeline carries it from ``begin`` to ``finish``, and what each input became.

:class:`Outcome` is one input's result (an encoded categorized event and its review copy,
or the error to dead-letter it with); :class:`Batch` holds a batch's decoded events, cache
answers and model work between :meth:`~workers.classify.pipeline.BatchPipeline.begin` and
:meth:`~workers.classify.pipeline.BatchPipeline.finish`; a :class:`Group` is the items one
model version serves (the live one, or the canary).
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass, field

from workers.classify.categorized import DecisionJSON
from workers.classify.modelwork import ModelResult, ModelWork
from workers.core.events import ProductEvent
from workers.core.overrides import Override
from workers.inference.featurizer import PreparedText
from workers.inference.model import Classifier

__all__ = ["Answer", "Batch", "Group", "Outcome"]


@dataclass(slots=True)
class Outcome:
    """What one input payload turned into.

    Either ``error`` is set (dead-letter the input) or ``value`` is the encoded
    categorized event, keyed by ``key``; ``review`` is its encoded review copy, if any.
    """

    error: BaseException | None = None
    key: bytes | None = None
    value: bytes | None = None
    review: bytes | None = None
    source: str = ""
    occurred_ms: int = 0


Answer = DecisionJSON | Override


@dataclass(slots=True)
class Group:
    """The items of a batch one version serves (the live one, or the canary)."""

    classifier: Classifier
    role: str  # "live" or "canary"
    members: list[int]  # event indexes
    misses: dict[str, list[int]] = field(default_factory=dict)  # content hash -> event indexes


@dataclass(slots=True)
class Batch:
    """A batch between :meth:`BatchPipeline.begin` and :meth:`BatchPipeline.finish`."""

    outcomes: list[Outcome]
    events: list[ProductEvent] = field(default_factory=list)
    where: list[int] = field(default_factory=list)  # payload index of each decoded event
    hashes: list[str] = field(default_factory=list)
    answers: list[Answer | None] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    groups: list[Group] = field(default_factory=list)
    group_of: list[int] | None = None  # each event's group index; None: all in groups[0]
    model: Future[list[ModelResult]] | None = None  # with a shadow: the whole model job
    work: ModelWork | None = None  # without: chunks either thread may run ...
    jobs: list[tuple[Group, list[PreparedText]]] = field(default_factory=list)  # ... of these
