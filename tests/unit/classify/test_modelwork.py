"""The batch's model work in chunks: answers land on the right items across chunk
boundaries, a poison item is isolated inside its chunk, and the loop thread runs the
chunks the model thread has not started instead of waiting for it.

A stand-in classifier answers each item with a category named after its own title, so
any misalignment between chunks and items shows in the outputs. Titles are real
bigbasket product names.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import msgspec
import pytest

from export.data.datasets import load_dataset
from tests.unit.payloads import decided_as, product_payloads
from workers.classify.batch import Outcome
from workers.classify.metrics import ClassifyMetrics
from workers.classify.modelwork import MODEL_CHUNK
from workers.classify.pipeline import BatchPipeline
from workers.core.codec import Codec
from workers.core.product import ProductText
from workers.inference.featurizer import Featurizer, PreparedText
from workers.inference.model import BatchTimings
from workers.inference.spec import FeaturizerSpec
from workers.inference.taxonomy import Decided

N = 2 * MODEL_CHUNK + 177  # three chunks, the last one partial


@pytest.fixture(scope="module")
def titles(data_dir: Path) -> list[str]:
    rows, _ = load_dataset("bigbasket", data_dir, limit=4 * N)
    distinct = list(dict.fromkeys(r.title for r in rows))
    assert len(distinct) >= N
    return distinct[:N]


class _Echo:
    """Answers each item with a category whose name is the item's normalized title."""

    def __init__(self, poison: str | None = None) -> None:
        self.version = "echo-1"
        self.featurizer = Featurizer(FeaturizerSpec())
        self.last_timings = BatchTimings(0.0, 0.0, 0.0)
        self.standard = None  # no standard taxonomy mapping
        self.poison = poison
        self.threads: list[str] = []

    def decide_prepared(self, items: Sequence[PreparedText]) -> Decided:
        self.threads.append(threading.current_thread().name)
        if self.poison is not None and any(i.title == self.poison for i in items):
            raise FloatingPointError("model blew up")
        return decided_as([("Echo", item.title) for item in items], 0.9)


def _payloads(titles: list[str]) -> list[bytes]:
    return product_payloads([(f"p-{i}", t) for i, t in enumerate(titles)], Codec())


def _answered_titles(outcomes: list[Outcome]) -> list[str | None]:
    """The title each output's category was named after (None: no output)."""
    return [
        None if o.value is None else msgspec.json.decode(o.value)["category_path"][1]
        for o in outcomes
    ]


def test_answers_stay_aligned_across_chunks_and_a_poison_item_is_isolated(
    titles: list[str],
) -> None:
    codec = Codec()
    bad = MODEL_CHUNK + 123  # in the second chunk
    clf = _Echo()
    prepared = [clf.featurizer.prepare(ProductText(title=t)) for t in titles]
    clf.poison = prepared[bad].title
    pipeline = BatchPipeline(clf, codec, ClassifyMetrics())  # type: ignore[arg-type]
    with ThreadPoolExecutor(1) as pool:
        outcomes = pipeline.finish(pipeline.begin(_payloads(titles), pool))
    answered = _answered_titles(outcomes)
    for i, (p, a) in enumerate(zip(prepared, answered, strict=True)):
        if i == bad:
            assert a is None and isinstance(outcomes[i].error, FloatingPointError)
        else:
            assert a == p.title and outcomes[i].error is None, i


def test_the_loop_thread_runs_the_chunks_the_model_thread_has_not_started(
    titles: list[str],
) -> None:
    codec = Codec()
    clf = _Echo()
    pipeline = BatchPipeline(clf, codec, ClassifyMetrics())  # type: ignore[arg-type]
    release = threading.Event()
    with ThreadPoolExecutor(1, thread_name_prefix="model") as pool:
        pool.submit(release.wait, 30)  # the model thread is busy with something else
        batch = pipeline.begin(_payloads(titles), pool)
        outcomes = pipeline.finish(batch)  # must not wait for the model thread
        release.set()
    assert set(clf.threads) == {threading.current_thread().name}
    assert len(clf.threads) == 3  # one classify call per chunk
    prepared = [clf.featurizer.prepare(ProductText(title=t)) for t in titles]
    assert _answered_titles(outcomes) == [p.title for p in prepared]


def test_without_an_executor_the_batch_is_classified_on_the_calling_thread(
    titles: list[str],
) -> None:
    codec = Codec()
    clf = _Echo()
    pipeline = BatchPipeline(clf, codec, ClassifyMetrics())  # type: ignore[arg-type]
    outcomes = pipeline.run(_payloads(titles[:10]))
    assert all(o.value is not None for o in outcomes)
    assert clf.threads == [threading.current_thread().name]
