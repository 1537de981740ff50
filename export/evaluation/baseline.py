"""The classic strong baseline for product titles, run side by side with our model.

TF-IDF over word 1-2 grams plus char_wb 2-5 grams (sublinear tf) feeding a
LinearSVC (C=0.5), on exactly the same split and input text as the neural
model. It is only for comparison; it never ships.

``min_df=2`` drops n-grams seen in one training row only. LinearSVC keeps a
dense float64 weight matrix of classes x features: on the Chinese catalog
(707 leaves) with every singleton n-gram kept, that matrix alone needs ~17 GB
and the fit was killed for lack of memory on a 24 GiB machine. Singletons
cannot generalise to the test split anyway.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import FeatureUnion, make_pipeline
from sklearn.svm import LinearSVC

from workers.core.product import ProductText


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


def run_baseline(
    train_items: Sequence[ProductText],
    train_paths: Sequence[tuple[str, ...]],
    test_items: Sequence[ProductText],
    *,
    c: float = 0.5,
    min_df: int = 2,
) -> BaselineResult:
    """Fit on the training part, predict the test part."""
    vectorizer = FeatureUnion(
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
    labels = ["\x1f".join(p) for p in train_paths]
    model = make_pipeline(vectorizer, LinearSVC(C=c))
    start = time.perf_counter()
    model.fit([baseline_text(x) for x in train_items], labels)
    fit_seconds = time.perf_counter() - start
    decision = np.asarray(model.decision_function([baseline_text(x) for x in test_items]))
    classes = [tuple(str(c_).split("\x1f")) for c_ in model.classes_]
    if decision.ndim == 1:  # two classes: sklearn returns one column
        decision = np.stack([-decision, decision], axis=1)
    best = decision.argmax(axis=1)
    return BaselineResult(
        predictions=[classes[i] for i in best.tolist()],
        decision=decision,
        classes=classes,
        fit_seconds=fit_seconds,
    )
