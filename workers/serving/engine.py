"""One batch of products or queries through a model set, answered as JSON.

Runs on the server's model thread (:mod:`workers.serving.batcher` gathers the batch). Each
batch uses the :class:`~workers.lifecycle.modelset.ModelSet` it began with; the batcher
swaps sets between batches, so a hot swap never splits or fails a request.

Products follow the classify worker's rules, with its code: the live featurizer prepares
each text once (cache key and model input), canary routing by
:func:`~workers.lifecycle.modelset.canary_routes` on ``product_id`` (the content hash when
a request has no id), one Redis ``MGET`` per group for overrides and cached answers
(:class:`~workers.classify.cache.ResultCache`, the worker's keys and values, so the worker
and the server share answers), identical texts classified once, new answers written back,
and the answer precedence override > cache > model. An answer carries the fields of a
``product.categorized`` event, spliced from the same pre-encoded
:class:`~workers.classify.categorized.DecisionJSON` the worker produces.

Queries go to the query model, without Redis: a query is a few words, and its model run
costs less than a round trip. There are no per-query overrides.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

import msgspec

from workers.classify.cache import ResultCache, encode_cached
from workers.classify.categorized import DecisionEncoder, DecisionJSON, review_reason_json
from workers.core.overrides import Override
from workers.core.product import ProductText
from workers.inference.featurizer import PreparedText
from workers.inference.model import Classifier
from workers.inference.standard import NULL_FIELDS, StandardTable
from workers.lifecycle.modelset import ModelSet, canary_routes
from workers.serving.metrics import ServeMetrics

__all__ = ["ProductEngine", "ProductItem", "QueryEngine"]

_json = msgspec.json.encode
WARM_SAMPLE: Final = 64
"""Recent inputs kept to warm up a newly loaded model on real texts before it serves."""
_NO_ID: Final = ""  # no override key is ever written for it (ids have at least one char)
_OVERRIDE_FIELDS: Final = (
    b'"category_id":%s,"category_path":%s,"confidence":1.0,"alternatives":[],'
    b'"abstained":false,"needs_review":false,%s'
)


@dataclass(frozen=True, slots=True)
class ProductItem:
    """One product of a request: its id (may be None) and text."""

    product_id: str | None
    text: ProductText


def _classify(
    classifier: Classifier, encoder: DecisionEncoder, texts: Sequence[PreparedText]
) -> list[DecisionJSON]:
    if not texts:
        return []
    return encoder.encode_decided(classifier.decide_prepared(texts), classifier.standard)


class ProductEngine:
    """Products to ``product.categorized``-shaped answers (JSON bytes, one per item)."""

    kind = "products"

    def __init__(
        self,
        models: ModelSet | None,
        metrics: ServeMetrics,
        cache: ResultCache | None = None,
    ) -> None:
        self.models = models
        self.metrics = metrics
        self.cache = cache
        self.recent: Sequence[ProductItem] = ()
        self._encoder = DecisionEncoder()
        lifecycle = metrics.lifecycle
        self._observe_model: Callable[[str, str, float], None] = lambda version, role, s: (
            lifecycle.model_seconds.labels(version, role).observe(s)
        )

    def recent_texts(self) -> list[ProductText]:
        """Texts of the latest batch (the warm-up sample of a newly loaded model)."""
        return [item.text for item in self.recent]

    def run(self, items: Sequence[ProductItem]) -> list[bytes]:
        models = self.models  # the set this batch began with, whatever a swap does meanwhile
        if models is None:
            raise RuntimeError("no product model is loaded")
        self.recent = items[:WARM_SAMPLE]
        live = models.live
        texts = [live.featurizer.prepare(item.text) for item in items]
        hashes = [t.content_hash() for t in texts]
        ids = [item.product_id or _NO_ID for item in items]
        n = len(items)
        groups: list[tuple[Classifier, str, list[int]]]
        if models.canary_active and models.canary is not None:
            keys = [pid or h for pid, h in zip(ids, hashes, strict=True)]
            routes = canary_routes(keys, models.canary_share)
            canary = models.canary
            members = [j for j in range(n) if routes[j]]
            groups = [
                (live, "live", [j for j in range(n) if not routes[j]]),
                (canary, "canary", members),
            ]
            if canary.featurizer.spec != live.featurizer.spec:
                for j in members:
                    texts[j] = canary.featurizer.prepare(items[j].text)
                    hashes[j] = texts[j].content_hash()
        else:
            groups = [(live, "live", list(range(n)))]

        answers: list[bytes] = [b""] * n
        counts = {"model": 0, "cache": 0, "override": 0}
        for classifier, role, members in groups:
            if members:
                self._group(classifier, role, members, ids, texts, hashes, answers, counts)
        for source, count in counts.items():
            if count:
                self.metrics.items.labels(self.kind, source).inc(count)
        if self.cache is not None:
            self.metrics.cache_available.set(1 if self.cache.available else 0)
        return answers

    def _group(
        self,
        classifier: Classifier,
        role: str,
        members: list[int],
        ids: list[str],
        texts: list[PreparedText],
        hashes: list[str],
        answers: list[bytes],
        counts: dict[str, int],
    ) -> None:
        version = classifier.version
        lookup = None
        if self.cache is not None:
            lookup = self.cache.lookup([ids[j] for j in members], [hashes[j] for j in members],
                                       version)  # fmt: skip
        misses: dict[str, list[int]] = {}
        for k, j in enumerate(members):
            if lookup is not None:
                override = lookup.overrides[k]
                if override is not None:
                    answers[j] = _override_answer(
                        ids[j], override, version, hashes[j], classifier.standard
                    )
                    counts["override"] += 1
                    continue
                cached = lookup.results[k]
                if cached is not None:
                    answers[j] = _product_answer(ids[j], cached, version, b"cache", hashes[j])
                    counts["cache"] += 1
                    continue
            misses.setdefault(hashes[j], []).append(j)
        if not misses:
            return
        t0 = time.perf_counter()
        decided = _classify(classifier, self._encoder, [texts[js[0]] for js in misses.values()])
        self._observe_model(version, role, time.perf_counter() - t0)
        to_store: list[tuple[str, bytes]] = []
        for decision, (content_hash, js) in zip(decided, misses.items(), strict=True):
            for j in js:
                answers[j] = _product_answer(ids[j], decision, version, b"model", content_hash)
            to_store.append((content_hash, encode_cached(decision)))
        counts["model"] += sum(len(js) for js in misses.values())
        self.metrics.lifecycle.served.labels(version, role).inc(len(members))
        if self.cache is not None:
            self.cache.store(version, to_store)


def _product_answer(
    product_id: str, decision: DecisionJSON, version: str, source: bytes, input_hash: str
) -> bytes:
    reason = review_reason_json(decision) or b"null"
    return b'{"product_id":%s,%s,"model_version":%s,"source":"%s","input_hash":"%s",' \
        b'"review_reason":%s}' % (
            _json(product_id or None), decision.fields, _json(version), source,
            input_hash.encode(), reason,
        )  # fmt: skip


def _override_answer(
    product_id: str,
    override: Override,
    version: str,
    input_hash: str,
    standard: StandardTable | None = None,
) -> bytes:
    fields = _OVERRIDE_FIELDS % (
        _json(override.category_id),
        _json(override.path),
        NULL_FIELDS if standard is None else standard.fields_for(override.path),
    )
    return _product_answer(
        product_id,
        DecisionJSON(override.category_id, 1.0, len(override.path), False, False, fields),
        version,
        b"override",
        input_hash,
    )


class QueryEngine:
    """Search queries to answers (JSON bytes, one per query) from the query model."""

    kind = "queries"

    def __init__(self, models: ModelSet | None, metrics: ServeMetrics) -> None:
        self.models = models
        self.metrics = metrics
        self.recent: Sequence[str] = ()
        self._encoder = DecisionEncoder()

    def recent_texts(self) -> list[ProductText]:
        """Queries of the latest batch (the warm-up sample of a newly loaded model)."""
        return [ProductText(title=q) for q in self.recent]

    def run(self, queries: Sequence[str]) -> list[bytes]:
        models = self.models
        if models is None:
            raise RuntimeError("no query model is loaded")
        self.recent = queries[:WARM_SAMPLE]
        live = models.live
        n = len(queries)
        texts = [live.featurizer.prepare(ProductText(title=q)) for q in queries]
        hashes = [t.content_hash() for t in texts]
        groups = [(live, "live", list(range(n)))]
        if models.canary_active and models.canary is not None:
            routes = canary_routes(hashes, models.canary_share)
            groups = [
                (live, "live", [j for j in range(n) if not routes[j]]),
                (models.canary, "canary", [j for j in range(n) if routes[j]]),
            ]
        answers: list[bytes] = [b""] * n
        lifecycle = self.metrics.lifecycle
        for classifier, role, members in groups:
            if not members:
                continue
            version = classifier.version
            prepare = classifier.featurizer.prepare
            t0 = time.perf_counter()
            batch = [texts[j] if classifier is live else prepare(ProductText(title=queries[j]))
                     for j in members]  # fmt: skip
            decided = _classify(classifier, self._encoder, batch)
            lifecycle.model_seconds.labels(version, role).observe(time.perf_counter() - t0)
            lifecycle.served.labels(version, role).inc(len(members))
            version_json = _json(version)
            for j, d in zip(members, decided, strict=True):
                confident = 0 if d.abstained else d.depth
                answers[j] = b'{"query":%s,%s,"confident_depth":%d,"model_version":%s}' % (
                    _json(queries[j]),
                    _query_fields(d.fields),
                    confident,
                    version_json,
                )
        self.metrics.items.labels(self.kind, "model").inc(n)
        return answers


_REVIEW_TAIL: Final = (b',"needs_review":false', b',"needs_review":true')


def _query_fields(fields: bytes) -> bytes:
    """A decision's fields without ``needs_review`` (a query is never reviewed; the
    ``confident_depth`` says how deep the answer can be trusted) and without the standard
    taxonomy fields (a query model carries no mapping)."""
    fields = fields.removesuffix(b"," + NULL_FIELDS)
    for tail in _REVIEW_TAIL:
        if fields.endswith(tail):
            return fields[: -len(tail)]
    return fields
