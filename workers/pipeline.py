"""One batch of input payloads in, one outcome per payload out: the worker's logic without Kafka.

For a batch of raw ``product.created``/``product.updated`` payloads,
:meth:`BatchPipeline.run` (or :meth:`~BatchPipeline.begin` then
:meth:`~BatchPipeline.finish`, with the model running on another thread in between):

1. decodes and validates each one (:class:`workers.events.Codec`); a failure is the
   item's outcome (the worker dead-letters it);
2. asks Redis, in one ``MGET``, for every item's override and cached result;
3. runs one :meth:`Classifier.classify` call over the remaining items (identical
   texts classified once); if that call raises, the batch is bisected until the
   failing item(s) are isolated, and those become dead letters with the error;
4. writes the new results back to Redis in one pipeline;
5. builds and encodes a :class:`CategorizedEvent` per item, plus its review copy when
   the model abstained or backed off.

The answer precedence is override, then cache, then model. Output event ids are
deterministic (``schemas/README.md``): ``derive_event_id("product.categorized",
causation_id, model_version)``; an override adds ``"override:<category_id>"``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

import msgspec

from workers.cache import CachedDecision, Lookup, Override, ResultCache, encode_cached
from workers.events import (
    Alternative,
    CategorizedEvent,
    Codec,
    ProductEvent,
    derive_event_id,
    utc_now,
)
from workers.featurizer import PreparedText, ProductText
from workers.metrics import ClassifyMetrics
from workers.model import Classifier
from workers.taxonomy import Decision

__all__ = ["Batch", "BatchPipeline", "Outcome", "review_reason"]

log = logging.getLogger(__name__)

_EVENT_TYPE: Final = "product.categorized"


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


Answer = Decision | CachedDecision | Override
ModelResult = tuple[list[Decision | None], dict[int, BaseException]]


@dataclass(slots=True)
class Batch:
    """A batch between :meth:`BatchPipeline.begin` and :meth:`BatchPipeline.finish`."""

    outcomes: list[Outcome]
    events: list[ProductEvent] = field(default_factory=list)
    where: list[int] = field(default_factory=list)  # payload index of each decoded event
    hashes: list[str] = field(default_factory=list)
    answers: list[Answer | None] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    misses: dict[str, list[int]] = field(default_factory=dict)  # content hash -> event indexes
    model: Future[ModelResult] | None = None


def _done(result: ModelResult) -> Future[ModelResult]:
    future: Future[ModelResult] = Future()
    future.set_result(result)
    return future


def review_reason(decision: Decision | CachedDecision) -> str | None:
    if decision.abstained:
        return "abstained: no category level cleared its confidence threshold"
    if decision.needs_review:
        return (
            f"backed off to a depth-{len(decision.path)} category: the best leaf scored "
            "below the leaf threshold"
        )
    return None


def _clamp(x: float) -> float:
    return 0.0 if x < 0.0 else 1.0 if x > 1.0 else x


class BatchPipeline:
    """Decode, look up, classify and encode one batch (no Kafka in here)."""

    def __init__(
        self,
        classifier: Classifier,
        codec: Codec,
        metrics: ClassifyMetrics,
        cache: ResultCache | None = None,
    ) -> None:
        self.classifier = classifier
        self.codec = codec
        self.metrics = metrics
        self.cache = cache
        self.version = classifier.version

    # ------------------------------------------------------------------ run

    def run(self, payloads: Sequence[bytes | None]) -> list[Outcome]:
        """The whole batch, on this thread."""
        return self.finish(self.begin(payloads))

    def begin(self, payloads: Sequence[bytes | None], executor: Executor | None = None) -> Batch:
        """Decode, hash and look up; start the model on the misses, on ``executor`` if given
        (onnxruntime releases the GIL, so the caller's thread can do other work meanwhile)."""
        batch = Batch([Outcome() for _ in payloads])
        outcomes, events, where = batch.outcomes, batch.events, batch.where
        decode = self.codec.decode_product
        for i, data in enumerate(payloads):
            try:
                events.append(decode(data))
            except Exception as exc:  # InvalidEventError; anything else is a bug: dead-letter too
                outcomes[i].error = exc
                continue
            where.append(i)
        if not events:
            return batch

        prepare = self.classifier.featurizer.prepare
        texts = [
            prepare(ProductText(e.title, e.brand, e.description, e.attributes)) for e in events
        ]
        hashes = batch.hashes = [t.content_hash() for t in texts]
        lookup: Lookup | None = None
        if self.cache is not None:
            lookup = self.cache.lookup([e.product_id for e in events], hashes, self.version)
            self.metrics.cache_available.set(1 if self.cache.available else 0)

        answers = batch.answers = [None] * len(events)
        sources = batch.sources = ["model"] * len(events)
        misses = batch.misses
        hits = overrides = 0
        for j, h in enumerate(hashes):
            if lookup is not None:
                override = lookup.overrides[j]
                if override is not None:
                    answers[j], sources[j] = override, "override"
                    overrides += 1
                    continue
                cached = lookup.results[j]
                if cached is not None:
                    answers[j], sources[j] = cached, "cache"
                    hits += 1
                    continue
            misses.setdefault(h, []).append(j)
        self.metrics.cache_hits.inc(hits)
        self.metrics.cache_misses.inc(len(events) - hits - overrides)
        if overrides:
            self.metrics.overrides.inc(overrides)
        if misses:
            items = [texts[js[0]] for js in misses.values()]
            if executor is None:
                batch.model = _done(self._classify(items))
            else:
                batch.model = executor.submit(self._classify, items)
        return batch

    def finish(self, batch: Batch) -> list[Outcome]:
        """Wait for the model, store its answers in Redis, encode every output."""
        outcomes, events, where = batch.outcomes, batch.events, batch.where
        answers, hashes = batch.answers, batch.hashes
        if batch.model is not None:
            decided, failed = batch.model.result()
            to_store: list[tuple[str, bytes]] = []
            for pos, js in enumerate(batch.misses.values()):
                error = failed.get(pos)
                if error is not None:
                    for j in js:
                        outcomes[where[j]].error = error
                    continue
                decision = decided[pos]
                for j in js:
                    answers[j] = decision
                if decision is not None:
                    to_store.append((hashes[js[0]], encode_cached(decision)))
            if self.cache is not None and to_store:
                self.cache.store(self.version, to_store)

        now = utc_now()
        sources = batch.sources
        for j, event in enumerate(events):
            out = outcomes[where[j]]
            answer = answers[j]
            if out.error is not None or answer is None:
                continue
            self._encode(
                out, event, input_hash=hashes[j], answer=answer, source=sources[j], now=now
            )
        return outcomes

    # ------------------------------------------------------------------ model

    def _classify(self, items: list[PreparedText]) -> ModelResult:
        """Decisions for ``items``; items the model fails on are bisected out as errors."""
        decided: list[Decision | None] = [None] * len(items)
        failed: dict[int, BaseException] = {}
        stack = [(0, len(items))]
        while stack:
            lo, hi = stack.pop()
            try:
                result = self.classifier.classify_prepared(items[lo:hi])
            except Exception as exc:
                if hi - lo == 1:
                    failed[lo] = exc
                    self.metrics.poison.inc()
                    log.error(
                        "model failed on one item (%s: %s); dead-lettering it",
                        type(exc).__name__,
                        exc,
                    )
                else:
                    mid = (lo + hi) // 2
                    stack += [(mid, hi), (lo, mid)]
                continue
            t = self.classifier.last_timings
            self.metrics.featurize_seconds.observe(t.featurize_s)
            self.metrics.inference_seconds.observe(t.inference_s)
            decided[lo:hi] = result
        return decided, failed

    # ------------------------------------------------------------------ outputs

    def _encode(
        self,
        out: Outcome,
        event: ProductEvent,
        *,
        input_hash: str,
        answer: Decision | CachedDecision | Override,
        source: str,
        now: datetime,
    ) -> None:
        version = self.version
        if isinstance(answer, Override):
            result = CategorizedEvent(
                event_type=_EVENT_TYPE,
                event_id=derive_event_id(
                    _EVENT_TYPE, event.event_id, version, f"override:{answer.category_id}"
                ),
                product_id=event.product_id,
                category_id=answer.category_id,
                category_path=list(answer.path),
                confidence=1.0,
                alternatives=[],
                abstained=False,
                needs_review=False,
                model_version=version,
                source="override",
                causation_id=event.event_id,
                input_hash=input_hash,
                event_time=event.occurred_at,
                classified_at=now,
            )
            reason = None
        else:
            if isinstance(answer, Decision):
                alts = [
                    Alternative(
                        category_id=a.category_id, category_path=list(a.path), score=_clamp(a.score)
                    )
                    for a in answer.alternatives
                ]
            else:
                alts = [
                    Alternative(category_id=c, category_path=list(p), score=_clamp(s))
                    for c, p, s in answer.alternatives
                ]
            result = CategorizedEvent(
                event_type=_EVENT_TYPE,
                event_id=derive_event_id(_EVENT_TYPE, event.event_id, version),
                product_id=event.product_id,
                category_id=answer.category_id,
                category_path=list(answer.path),
                confidence=_clamp(answer.confidence),
                alternatives=alts,
                abstained=answer.abstained,
                needs_review=answer.needs_review,
                model_version=version,
                source="cache" if source == "cache" else "model",
                causation_id=event.event_id,
                input_hash=input_hash,
                event_time=event.occurred_at,
                classified_at=now,
            )
            reason = review_reason(answer)
        encode = self.codec.encode
        out.key = event.product_id.encode()
        out.value = encode(result)
        out.source = source
        out.occurred_ms = int(event.occurred_at.timestamp() * 1000)
        if reason is not None:
            out.review = encode(msgspec.structs.replace(result, review_reason=reason))
