"""One batch of input payloads in, one outcome per payload out: the worker's logic without Kafka.

For a batch of raw ``product.created``/``product.updated`` payloads,
:meth:`BatchPipeline.run` (or :meth:`~BatchPipeline.begin` then
:meth:`~BatchPipeline.finish`, with the model running on another thread in between):

1. decodes and validates each one (:class:`workers.core.codec.Codec`); a failure is the
   item's outcome (the worker dead-letters it);
2. asks Redis, in one ``MGET``, for every item's override and cached result;
3. classifies the remaining items (identical texts once) in chunks of
   :data:`~workers.classify.modelwork.MODEL_CHUNK`, which the model thread and, once it
   reaches ``finish``, the calling thread take in turn
   (:class:`~workers.classify.modelwork.ModelWork`); if a classify call raises, its chunk is
   bisected until the failing item(s) are isolated, and those become dead letters
   with the error;
4. writes the new results back to Redis in one pipeline;
5. encodes a ``product.categorized`` event per item (:mod:`workers.classify.categorized`: from
   pre-encoded parts, byte for byte the :class:`~workers.core.events.CategorizedEvent`
   msgspec would write), plus its review copy when the model abstained or backed off.

The pipeline serves a :class:`workers.lifecycle.modelset.ModelSet`. Each batch keeps the set it
began with (a swap between ``begin`` and ``finish`` does not touch it), and every
output names the version that produced it. With a canary, the batch's items are split
by a stable hash of ``product_id`` into two groups, each with its own cache lookup
(cache keys include the version) and its own classify call. With a shadow, the
candidate classifies the live group's distinct texts on the model thread after the
live call, and only its agreement, confidence shift and time are recorded.

The answer precedence is override, then cache, then model. Output event ids are
deterministic (``schemas/README.md``): ``derive_event_id("product.categorized",
causation_id, model_version)``; an override adds ``"override:<category_id>"``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from concurrent.futures import Executor, Future

from workers.classify.batch import Answer, Batch, Group, Outcome
from workers.classify.cache import Lookup, ResultCache, encode_cached
from workers.classify.categorized import (
    DecisionEncoder,
    DecisionJSON,
    EventWriter,
    review_reason,
    review_reason_json,
    with_review_reason,
)
from workers.classify.metrics import ClassifyMetrics
from workers.classify.modelwork import ModelResult, ModelWork
from workers.classify.shadow import ShadowJob
from workers.core.codec import Codec
from workers.core.events import ProductEvent, override_categorized, utc_now
from workers.core.overrides import Override
from workers.core.product import ProductText
from workers.inference.featurizer import PreparedText
from workers.inference.model import Classifier
from workers.inference.standard import StandardTable
from workers.lifecycle.modelset import ModelSet, canary_routes

__all__ = ["BatchPipeline", "review_reason"]

log = logging.getLogger(__name__)

_MODEL, _CACHE = b"model", b"cache"


def _done(result: list[ModelResult]) -> Future[list[ModelResult]]:
    future: Future[list[ModelResult]] = Future()
    future.set_result(result)
    return future


class BatchPipeline:
    """Decode, look up, classify and encode one batch (no Kafka in here)."""

    def __init__(
        self,
        models: ModelSet | Classifier,
        codec: Codec,
        metrics: ClassifyMetrics,
        cache: ResultCache | None = None,
    ) -> None:
        self.models = models if isinstance(models, ModelSet) else ModelSet(models)
        self.codec = codec
        self.metrics = metrics
        self.cache = cache
        self.recent: list[ProductEvent] = []  # the last batch's events (warm-up sample)
        self._decisions = DecisionEncoder()  # both threads: its tables only grow (or clear)

    @property
    def classifier(self) -> Classifier:
        """The live classifier of the current set."""
        return self.models.live

    @property
    def version(self) -> str:
        """The live version of the current set (batches begun earlier keep theirs)."""
        return self.models.live.version

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

        models = self.models
        self.recent = events
        live = models.live
        prepare = live.featurizer.prepare
        texts = [prepare(ProductText.of(e)) for e in events]
        hashes = batch.hashes = [t.content_hash() for t in texts]
        n = len(events)
        groups = batch.groups
        if models.canary_active and models.canary is not None:
            routes = canary_routes([e.product_id for e in events], models.canary_share)
            canary_members = [j for j in range(n) if routes[j]]
            groups.append(Group(live, "live", [j for j in range(n) if not routes[j]]))
            groups.append(Group(models.canary, "canary", canary_members))
            batch.group_of = [1 if r else 0 for r in routes]
            if models.canary.featurizer.spec != live.featurizer.spec:
                canary_prepare = models.canary.featurizer.prepare
                for j in canary_members:
                    e = events[j]
                    texts[j] = canary_prepare(ProductText.of(e))
                    hashes[j] = texts[j].content_hash()
        else:
            groups.append(Group(live, "live", list(range(n))))

        answers = batch.answers = [None] * n
        sources = batch.sources = ["model"] * n
        hits = overrides = 0
        for group in groups:
            members = group.members
            if not members:
                continue
            lookup: Lookup | None = None
            if self.cache is not None:
                if len(groups) == 1:
                    ids, keys = [e.product_id for e in events], hashes
                else:
                    ids = [events[j].product_id for j in members]
                    keys = [hashes[j] for j in members]
                lookup = self.cache.lookup(ids, keys, group.classifier.version)
            misses = group.misses
            for k, j in enumerate(members):
                if lookup is not None:
                    override = lookup.overrides[k]
                    if override is not None:
                        answers[j], sources[j] = override, "override"
                        overrides += 1
                        continue
                    cached = lookup.results[k]
                    if cached is not None:
                        answers[j], sources[j] = cached, "cache"
                        hits += 1
                        continue
                misses.setdefault(hashes[j], []).append(j)
        if self.cache is not None:
            self.metrics.cache_available.set(1 if self.cache.available else 0)
        self.metrics.cache_hits.inc(hits)
        self.metrics.cache_misses.inc(n - hits - overrides)
        if overrides:
            self.metrics.overrides.inc(overrides)
        jobs = [(g, [texts[js[0]] for js in g.misses.values()]) for g in groups]
        shadow = None
        if models.shadow is not None:
            live_group = groups[0]
            shadow = ShadowJob.build(
                models.shadow,
                models.live,
                [events[j] for j in live_group.members],
                [texts[j] for j in live_group.members],
                [hashes[j] for j in live_group.members],
                [answers[j] for j in live_group.members],
                live_group.misses,
            )
        if shadow is not None:
            if executor is None:
                batch.model = _done(self._run_models(jobs, shadow))
            else:
                batch.model = executor.submit(self._run_models, jobs, shadow)
        elif any(items for _, items in jobs):
            batch.work, batch.jobs = ModelWork([len(items) for _, items in jobs]), jobs
            if executor is not None:
                executor.submit(self._work, batch.work, jobs)
        return batch

    def finish(self, batch: Batch) -> list[Outcome]:
        """Wait for the model, store its answers in Redis, encode every output."""
        outcomes, events, where = batch.outcomes, batch.events, batch.where
        answers, hashes = batch.answers, batch.hashes
        groups = batch.groups
        results: list[ModelResult] | None = None
        if batch.work is not None:
            self._work(batch.work, batch.jobs)  # chunks the model thread has not started
            results = batch.work.wait()
            lifecycle = self.metrics.lifecycle
            for group, seconds in zip(groups, batch.work.seconds, strict=True):
                if seconds:
                    lifecycle.model_seconds.labels(group.classifier.version, group.role).observe(
                        seconds
                    )
        elif batch.model is not None:
            results = batch.model.result()
        if results is not None:
            for group, (decided, failed) in zip(groups, results, strict=True):
                to_store: list[tuple[str, bytes]] = []
                for pos, js in enumerate(group.misses.values()):
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
                    self.cache.store(group.classifier.version, to_store)

        now = utc_now()
        sources = batch.sources
        group_of = batch.group_of
        writers = [EventWriter(g.classifier.version, now) for g in groups]
        tables = [g.classifier.standard for g in groups]
        served = [0] * len(groups)
        encode = self._encode
        for j, event in enumerate(events):
            out = outcomes[where[j]]
            answer = answers[j]
            if out.error is not None or answer is None:
                continue
            g = 0 if group_of is None else group_of[j]
            served[g] += 1
            encode(out, event, hashes[j], answer, sources[j], writers[g], tables[g])
        lifecycle = self.metrics.lifecycle
        for group, count in zip(groups, served, strict=True):
            if count:
                lifecycle.served.labels(group.classifier.version, group.role).inc(count)
        return outcomes

    # ------------------------------------------------------------------ model

    def _work(self, work: ModelWork, jobs: list[tuple[Group, list[PreparedText]]]) -> None:
        """Run chunks of ``work`` until none is left to take (on either thread)."""
        while (i := work.take()) is not None:
            g, lo, hi = work.chunks[i]
            group, items = jobs[g]
            t0 = time.perf_counter()
            try:
                result = self._classify(items[lo:hi], group.classifier)
            except Exception as exc:  # a bug, not a model failure: fail the chunk's items
                log.exception("model work failed on %d items", hi - lo)
                result = ([None] * (hi - lo), dict.fromkeys(range(hi - lo), exc))
            work.complete(i, result, time.perf_counter() - t0)

    def _run_models(
        self, jobs: list[tuple[Group, list[PreparedText]]], shadow: ShadowJob | None
    ) -> list[ModelResult]:
        """Each group's misses through its classifier, then the shadow comparison (with a
        shadow, the batch's model work is one job: the shadow needs all live answers)."""
        lifecycle = self.metrics.lifecycle
        results: list[ModelResult] = []
        for group, items in jobs:
            if not items:
                results.append(([], {}))
                continue
            t0 = time.perf_counter()
            result = self._classify(items, group.classifier)
            results.append(result)
            version = group.classifier.version
            lifecycle.model_seconds.labels(version, group.role).observe(time.perf_counter() - t0)
            lifecycle.confidence.observe_batch(
                version, [d.confidence for d in result[0] if d is not None]
            )
        if shadow is not None:
            shadow.run(results[0][0], lifecycle)  # groups[0] is the live group
        return results

    def _classify(self, items: list[PreparedText], classifier: Classifier) -> ModelResult:
        """Decisions for ``items``; items the model fails on are bisected out as errors."""
        decided: list[DecisionJSON | None] = [None] * len(items)
        failed: dict[int, BaseException] = {}
        encode = self._decisions.encode_decided
        stack = [(0, len(items))]
        while stack:
            lo, hi = stack.pop()
            try:
                result = encode(classifier.decide_prepared(items[lo:hi]), classifier.standard)
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
            t = classifier.last_timings
            self.metrics.featurize_seconds.observe(t.featurize_s)
            self.metrics.inference_seconds.observe(t.inference_s)
            decided[lo:hi] = result
        return decided, failed

    # ------------------------------------------------------------------ outputs

    def _encode(
        self,
        out: Outcome,
        event: ProductEvent,
        input_hash: str,
        answer: Answer,
        source: str,
        writer: EventWriter,
        standard: StandardTable | None = None,
    ) -> None:
        out.key = event.product_id.encode()
        out.source = source
        out.occurred_ms = int(event.occurred_at.timestamp() * 1000)
        if isinstance(answer, Override):
            values = (None, None) if standard is None else standard.values(answer.path)
            out.value = self.codec.encode(
                override_categorized(
                    causation_id=event.event_id,
                    product_id=event.product_id,
                    category_id=answer.category_id,
                    category_path=answer.path,
                    model_version=writer.version,
                    input_hash=input_hash,
                    event_time=event.occurred_at,
                    classified_at=writer.classified_at,
                    standard_category=values[0],
                    google_product_category=values[1],
                )
            )
            return
        out.value = value = writer.write(
            product_id=event.product_id,
            causation_id=event.event_id,
            event_time=event.occurred_at,
            input_hash=input_hash,
            fields=answer.fields,
            source=_CACHE if source == "cache" else _MODEL,
        )
        if answer.needs_review or answer.abstained:
            reason = review_reason_json(answer)
            if reason is not None:
                out.review = with_review_reason(value, reason)
