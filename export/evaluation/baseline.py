"""The classic strong baseline for product titles, run side by side with our model.

TF-IDF over word 1-2 grams plus char_wb 2-5 grams (sublinear tf, ``min_df=2``) feeding a
one-vs-rest LinearSVC (C=0.5), on exactly the same rows and input text as the neural
model. It is only for comparison; it never ships.

Bounded memory. scikit-learn's multi-class LinearSVC keeps a dense float64 weight matrix of
classes x features: on the Chinese catalog (706 leaves, ~1M n-grams) that is 5.6 GB, and
the whole fit peaked at 11 GB. Here the classes are fitted in chunks: a chunk's rows keep
their class and every other row is relabelled "rest", so LinearSVC solves, for each class
of the chunk, exactly the binary problem (this class against all other rows) that its
one-vs-rest fit solves, plus one for "rest" that is dropped. Only the chunk's weights are
in memory at a time, and only the test rows' decision values are kept. liblinear releases
the GIL, so two chunks are fitted at once on two threads.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import FeatureUnion
from sklearn.svm import LinearSVC

from workers.core.product import ProductText

__all__ = ["BaselineResult", "baseline_text", "run_baseline"]

#: Bytes of float64 weights one chunk may hold (classes per chunk follow from it).
CHUNK_BYTES = 256 * 2**20
_REST = -1


def baseline_text(item: ProductText) -> str:
    """The same fields the featurizer reads, as one string."""
    attrs = " ".join(f"{k} {v}" for k, v in sorted(item.attributes.items()))
    return " ".join(x for x in (item.title, item.brand, attrs, item.description) if x)


@dataclass(frozen=True)
class BaselineResult:
    predictions: list[tuple[str, ...]]
    decision: npt.NDArray[np.float64]
    classes: list[tuple[str, ...]]
    fit_seconds: float


def _vectorizer(min_df: int) -> FeatureUnion:
    return FeatureUnion(
        [
            ("word", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=min_df)),
            (
                "char",
                TfidfVectorizer(
                    analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=min_df
                ),
            ),
        ]
    )


def run_baseline(
    train_items: Sequence[ProductText],
    train_paths: Sequence[tuple[str, ...]],
    test_items: Sequence[ProductText],
    *,
    c: float = 0.5,
    min_df: int = 2,
    threads: int | None = None,
) -> BaselineResult:
    """Fit on the training rows, return the decision values on the test rows."""
    start = time.perf_counter()
    classes = sorted(set(train_paths))
    index = {p: i for i, p in enumerate(classes)}
    y = np.array([index[p] for p in train_paths], dtype=np.int64)
    vectorizer = _vectorizer(min_df)
    x_train = vectorizer.fit_transform([baseline_text(x) for x in train_items]).tocsr()
    x_test = vectorizer.transform([baseline_text(x) for x in test_items]).tocsr()
    decision = np.empty((x_test.shape[0], len(classes)), dtype=np.float64)
    if len(classes) == 2:  # one binary problem: LinearSVC scores classes[1]
        score = LinearSVC(C=c).fit(x_train, y).decision_function(x_test)
        decision[:, 0], decision[:, 1] = -score, score
    else:
        per_chunk = max(1, CHUNK_BYTES // (8 * max(x_train.shape[1], 1)))
        chunks = [
            np.arange(s, min(s + per_chunk, len(classes)))
            for s in range(0, len(classes), per_chunk)
        ]

        def fit_chunk(members: npt.NDArray[np.int64]) -> None:
            labels = np.where(np.isin(y, members), y, _REST)
            svm = LinearSVC(C=c).fit(x_train, labels)
            scores = np.asarray(svm.decision_function(x_test))
            fitted = list(svm.classes_)
            if scores.ndim == 1:  # the chunk was one class against the rest
                scores = np.stack([-scores, scores], axis=1)
            for cls in members.tolist():
                decision[:, cls] = scores[:, fitted.index(cls)]

        workers = threads or min(2, os.cpu_count() or 1)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(fit_chunk, chunks))
    fit_seconds = time.perf_counter() - start
    best = decision.argmax(axis=1)
    return BaselineResult(
        predictions=[classes[i] for i in best.tolist()],
        decision=decision,
        classes=classes,
        fit_seconds=fit_seconds,
    )
