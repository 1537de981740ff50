"""Serving a bundle: featurize a batch, one onnxruntime run, hierarchical decode.

This is the one prediction path. The classify worker, ``prodcat predict`` and
the offline evaluation of an exported bundle all call :meth:`Classifier.classify`
so that serving matches what was measured. It imports no TensorFlow.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from workers.core.errors import BundleError
from workers.core.product import ProductText
from workers.inference.bundle import Bundle, load_bundle
from workers.inference.featurizer import Featurizer, PreparedText
from workers.inference.standard import StandardTable
from workers.inference.taxonomy import Decided, Decision

FloatArray = npt.NDArray[np.float32]

RUN_SLICE = 64
"""Items per onnxruntime run when a large batch is split by length. Ids are padded to the
longest item of a run, and the embedding gathers and sums dominate the model's time, so
runs of items of similar length (sorted by id count) do less work than one run padded to
the batch's longest item, and their gathered ``[items, width, dim]`` tensor stays small
enough for the CPU caches (and keeps onnxruntime's arena small). On the bigbasket bundle
this cut the model's CPU time per item by 15-35% (less on a busy machine). As with any
batching, an item's probabilities can differ in the last float32 bit with the batch it is
run in (onnxruntime's kernels block by batch size); they never depend on other items' ids."""


@dataclass(frozen=True, slots=True)
class BatchTimings:
    featurize_s: float
    inference_s: float
    decode_s: float


_NO_TIMINGS = BatchTimings(0.0, 0.0, 0.0)


class Classifier:
    """A loaded, warmed model ready to classify batches (from several threads at once:
    onnxruntime sessions, the featurizer and the taxonomy hold no per-call state)."""

    def __init__(self, bundle: Bundle, *, intra_op_threads: int = 1, top_k: int = 3) -> None:
        self.bundle = bundle
        self.version = bundle.version
        self.top_k = top_k
        self.featurizer = Featurizer(bundle.featurizer)
        self.standard = StandardTable(bundle.taxonomy, bundle.standard)
        """The bundle's standard taxonomy fields per category (null fields without one)."""
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self._session = ort.InferenceSession(
                str(bundle.model_path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise BundleError(f"{bundle.model_path}: onnxruntime cannot load it ({exc})") from exc
        self._inputs = [i.name for i in self._session.get_inputs()]
        self._dynamic = {
            i.name for i in self._session.get_inputs() if not isinstance(i.shape[-1], int)
        }
        outputs = self._session.get_outputs()
        self._output = outputs[0].name
        n_out = outputs[0].shape[-1]
        if isinstance(n_out, int) and n_out != len(bundle.taxonomy):
            raise BundleError(
                f"{bundle.model_path}: model has {n_out} outputs but metadata lists "
                f"{len(bundle.taxonomy)} labels"
            )
        self._local = threading.local()  # timings per thread: two threads may classify at once

    @property
    def last_timings(self) -> BatchTimings:
        """Timings of this thread's latest :meth:`classify_prepared` (or scores) call."""
        timings: BatchTimings = getattr(self._local, "timings", _NO_TIMINGS)
        return timings

    @last_timings.setter
    def last_timings(self, value: BatchTimings) -> None:
        self._local.timings = value

    @classmethod
    def from_path(
        cls,
        path: Path,
        *,
        expected_sha256: str | None = None,
        intra_op_threads: int = 1,
        top_k: int = 3,
    ) -> Classifier:
        return cls(
            load_bundle(path, expected_sha256=expected_sha256),
            intra_op_threads=intra_op_threads,
            top_k=top_k,
        )

    def scores(self, items: Sequence[ProductText]) -> FloatArray:
        """Leaf probabilities, float32 [len(items), leaves]."""
        return self.scores_prepared([self.featurizer.prepare(item) for item in items])

    def scores_prepared(self, prepared: Sequence[PreparedText]) -> FloatArray:
        """Leaf probabilities for texts already normalized by ``featurizer.prepare`` (the
        worker prepares once for both the cache key and the model)."""
        t0 = time.perf_counter()
        feats = self.featurizer.transform_prepared(prepared)
        t1 = time.perf_counter()
        probs = self._run(feats, len(prepared))
        t2 = time.perf_counter()
        self.last_timings = BatchTimings(t1 - t0, t2 - t1, 0.0)
        return probs

    def _run(self, feats: dict[str, npt.NDArray[np.int32]], batch: int) -> FloatArray:
        """One onnxruntime run, or, for a large batch of a model that takes any width, one
        run per slice of items of similar length (see :data:`RUN_SLICE`)."""
        if not self._dynamic or batch < 2 * RUN_SLICE:
            feeds = {name: self._fit_width(name, feats[name]) for name in self._inputs}
            (probs,) = self._session.run([self._output], feeds)
            return np.asarray(probs, dtype=np.float32)
        counts = {name: np.count_nonzero(feats[name], axis=1) for name in self._dynamic}
        order = np.argsort(sum(counts.values()), kind="stable")
        out: FloatArray | None = None
        for rows in np.array_split(order, batch // RUN_SLICE):
            feeds = {}
            for name in self._inputs:
                ids = feats[name]
                if name in counts:
                    width = max(int(counts[name][rows].max()), 1)
                    feeds[name] = ids[rows, :width]  # a fancy index copies: contiguous
                else:
                    feeds[name] = ids[rows]
            (probs,) = self._session.run([self._output], feeds)
            if out is None:
                out = np.empty((batch, probs.shape[1]), dtype=np.float32)
            out[rows] = probs
        assert out is not None
        return out

    def _fit_width(self, name: str, ids: npt.NDArray[np.int32]) -> npt.NDArray[np.int32]:
        """Drop the all-padding tail columns when the model takes any width (masked mean
        pooling ignores padding, so this changes nothing but the work done)."""
        if name not in self._dynamic:
            return ids
        width = max(int(np.count_nonzero(ids, axis=1).max(initial=0)), 1)
        return np.ascontiguousarray(ids[:, :width]) if width < ids.shape[1] else ids

    def classify(self, items: Sequence[ProductText]) -> list[Decision]:
        return self.classify_prepared([self.featurizer.prepare(item) for item in items])

    def classify_prepared(self, prepared: Sequence[PreparedText]) -> list[Decision]:
        if not prepared:
            return []
        return self.decide_prepared(prepared).decisions()

    def decide_prepared(self, prepared: Sequence[PreparedText]) -> Decided:
        """:meth:`classify_prepared` as arrays (:class:`~workers.inference.taxonomy.Decided`), which
        the worker encodes into events without building a tuple per decision."""
        probs = self.scores_prepared(prepared)
        t0 = time.perf_counter()
        decided = self.bundle.taxonomy.decide(probs, self.bundle.thresholds, self.top_k)
        timings = self.last_timings
        self.last_timings = BatchTimings(
            timings.featurize_s, timings.inference_s, time.perf_counter() - t0
        )
        return decided

    def warm_up(self, sample: Sequence[ProductText] | None = None) -> None:
        """Run once so the first real batch does not pay for lazy initialisation."""
        items = list(sample) if sample else [ProductText(title="warm up")]
        self.classify(items)
