"""The pipeline and its model set: the canary's share, a batch keeps its set, the shadow.

Stand-in classifiers (a fixed answer per version) make which version answered visible."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec
import pytest

from tests.unit.payloads import decided_as, product_payloads
from workers.classify.metrics import ClassifyMetrics
from workers.classify.pipeline import BatchPipeline
from workers.core.codec import Codec
from workers.core.events import CategorizedEvent
from workers.inference.featurizer import Featurizer, PreparedText
from workers.inference.model import BatchTimings
from workers.inference.spec import FeaturizerSpec
from workers.inference.taxonomy import Decided, Decision
from workers.lifecycle.modelset import ModelSet, canary_point


class _Fixed:
    """A stand-in classifier that answers one category for everything (its own per version)."""

    def __init__(self, version: str, category: str, confidence: float) -> None:
        self.version = version
        self.featurizer = Featurizer(FeaturizerSpec())
        self.category = category
        self.confidence = confidence
        self.seen: list[str] = []
        self.last_timings = BatchTimings(0.0, 0.0, 0.0)
        self.standard = None  # no standard taxonomy mapping

    def decide_prepared(self, items: Sequence[PreparedText]) -> Decided:
        self.seen.extend(i.title for i in items)
        return decided_as([("Food", self.category)] * len(items), self.confidence)

    def classify_prepared(self, items: Sequence[PreparedText]) -> list[Decision]:  # the shadow's
        return self.decide_prepared(items).decisions()


def test_pipeline_serves_the_canary_share_and_names_the_version(
    products: list[tuple[str, str]],
) -> None:
    codec = Codec()
    live, canary = _Fixed("v1", "Tea", 0.9), _Fixed("v2", "Coffee", 0.8)
    models = ModelSet(live, canary=canary, canary_share=0.2)  # type: ignore[arg-type]
    metrics = ClassifyMetrics()
    pipeline = BatchPipeline(models, codec, metrics)
    sample = products[:2000]
    outcomes = pipeline.run(product_payloads(sample, codec))
    decoder = msgspec.json.Decoder(CategorizedEvent)
    events = [decoder.decode(o.value) for o in outcomes if o.value is not None]
    assert len(events) == len(sample)
    for e in events:
        want = ("v2", "Coffee") if canary_point(e.product_id) < 0.2 else ("v1", "Tea")
        assert (e.model_version, e.category_path[-1]) == want
    n_canary = sum(1 for e in events if e.model_version == "v2")
    assert n_canary == pytest.approx(0.2 * len(sample), abs=0.03 * len(sample))
    served = metrics.registry.get_sample_value(
        "prodcat_model_served_total", {"version": "v2", "role": "canary"}
    )
    assert served == n_canary


def test_a_batch_keeps_the_model_set_it_began_with() -> None:
    codec = Codec()
    old, new = _Fixed("v1", "Tea", 0.9), _Fixed("v2", "Coffee", 0.8)
    pipeline = BatchPipeline(old, codec, ClassifyMetrics())  # type: ignore[arg-type]
    batch = pipeline.begin(product_payloads([("p1", "Green tea 100 bags")], codec))
    pipeline.models = ModelSet(new)  # type: ignore[arg-type]  # a swap between begin and finish
    (out,) = pipeline.finish(batch)
    assert out.value is not None
    assert msgspec.json.decode(out.value)["model_version"] == "v1"
    (out,) = pipeline.run(product_payloads([("p2", "Instant coffee 200 g")], codec))
    assert out.value is not None
    assert msgspec.json.decode(out.value)["model_version"] == "v2"


def test_shadow_is_compared_on_distinct_texts_and_never_published(
    products: list[tuple[str, str]],
) -> None:
    codec = Codec()
    live, shadow = _Fixed("v1", "Tea", 0.9), _Fixed("v2", "Tea", 0.6)
    metrics = ClassifyMetrics()
    pipeline = BatchPipeline(ModelSet(live, shadow=shadow), codec, metrics)  # type: ignore[arg-type]
    sample = products[:300]
    doubled = sample + [(f"{pid}-again", title) for pid, title in sample[:50]]  # same texts
    outcomes = pipeline.run(product_payloads(doubled, codec))
    assert all(msgspec.json.decode(o.value)["model_version"] == "v1" for o in outcomes if o.value)
    distinct = len(live.seen)  # the live model classified each distinct text once
    assert distinct < len(doubled)
    labels = {"live": "v1", "shadow": "v2"}

    def sample_value(name: str, extra: dict[str, Any] | None = None) -> float | None:
        return metrics.registry.get_sample_value(name, {**labels, **(extra or {})})

    assert sample_value("prodcat_shadow_compared_total") == distinct == len(shadow.seen)
    assert sample_value("prodcat_shadow_agreed_total") == distinct  # both say Tea
    # every shift is 0.6 - 0.9 = -0.3: all in the -0.5 < x <= -0.25 bucket
    assert sample_value("prodcat_shadow_confidence_shift_bucket", {"le": "-0.5"}) == 0
    assert sample_value("prodcat_shadow_confidence_shift_bucket", {"le": "-0.25"}) == distinct
