"""A batch's model work in chunks that the model thread and the loop thread share.

The classify worker's model thread runs a batch's chunks in order while the loop
thread produces the previous batch; when the loop is ready to finish the batch and
chunks are left, it takes them itself instead of waiting. onnxruntime releases the
GIL, so both cores then run the model. Each chunk is one classify call (featurize,
onnxruntime, decode); :meth:`ModelWork.wait` puts the chunks' answers and failures
back in item order per group (the live model, and the canary if any).
"""

from __future__ import annotations

import threading

from workers.classify.categorized import DecisionJSON

__all__ = ["MODEL_CHUNK", "ModelResult", "ModelWork"]

ModelResult = tuple[list[DecisionJSON | None], dict[int, BaseException]]
"""Answers in item order (None where the model failed), and the failures by item index."""

MODEL_CHUNK = 512
"""Items per unit of model work (featurize, onnxruntime, decode). The model thread takes
a batch's chunks in order; when the loop thread is ready to finish the batch and chunks
are left, it runs them itself instead of waiting (onnxruntime releases the GIL, so both
threads then run the model at once). 512 is eight onnxruntime slices
(:data:`workers.inference.model.RUN_SLICE`): big enough that the per-call costs of featurizing and
decoding stay small (in process, chunks of 256 cost ~3.5 µs/item more than 1,024), small
enough that a full batch (3,000) splits into six. Measured in the worker, two interleaved
rounds: 256 gave 21.3/20.5k, 512 24.7/23.1k, 1,024 22.7/24.2k events/s."""


class ModelWork:
    """One batch's model work, split into chunks that either thread may take: ``(group,
    lo, hi)`` slices of each group's items (``sizes``: items per group)."""

    def __init__(self, sizes: list[int]) -> None:
        self.sizes = sizes  # items per group
        self.chunks = [
            (g, lo, min(lo + MODEL_CHUNK, n))
            for g, n in enumerate(sizes)
            for lo in range(0, n, MODEL_CHUNK)
        ]
        self.results: list[ModelResult | None] = [None] * len(self.chunks)
        self.seconds = [0.0] * len(sizes)  # model time per group, over both threads
        self._next = 0
        self._left = len(self.chunks)
        self._lock = threading.Lock()
        self._done = threading.Event()
        if not self.chunks:
            self._done.set()

    def take(self) -> int | None:
        """The index of a chunk nobody has taken yet, or None."""
        with self._lock:
            i = self._next
            if i >= len(self.chunks):
                return None
            self._next = i + 1
            return i

    def complete(self, i: int, result: ModelResult, seconds: float) -> None:
        g = self.chunks[i][0]
        self.results[i] = result
        with self._lock:
            self.seconds[g] += seconds
            self._left -= 1
            if self._left == 0:
                self._done.set()

    def wait(self) -> list[ModelResult]:
        """Once every chunk is complete: each group's decisions and failures, in order."""
        self._done.wait()
        out: list[ModelResult] = [([], {}) for _ in self.sizes]
        for (g, lo, _), result in zip(self.chunks, self.results, strict=True):
            assert result is not None
            decided, failed = out[g]
            decided.extend(result[0])
            failed.update({lo + pos: exc for pos, exc in result[1].items()})
        return out
