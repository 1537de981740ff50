"""Keras networks over the shared featurizer's hashed n-gram ids, and their weights as
plain arrays for the ONNX export.

Every candidate reads the two inputs the featurizer produces, ``word_ids`` and
``char_ids`` (int32 [B, L], 0 = padding), and outputs ``probs``, a softmax over the
taxonomy's leaves:

* ``bag`` (the default): per input, a weighted bag of the ids' embeddings,
  ``sum_i w[id_i] * E[id_i] / sqrt(sum_i w[id_i]**2)``, where ``w`` is one learned,
  non-negative weight per id, initialised to the id's smoothed inverse document
  frequency on the training rows. With ``w`` fixed that is TF-IDF with an L2 norm (the
  classic baseline's features) projected by ``E``; learning ``w`` lets the network decide
  which n-grams matter. The two bags are concatenated, then one linear softmax layer.
* ``fasttext``: the plain mean of the embeddings per input (the fastText recipe).

Neither has a hidden layer: on these catalogs every non-linear layer tried overfitted
(validation and test weighted F1 1-4 points lower, see ``bench/README.md``).
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ start-up chatter out

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
import numpy.typing as npt
from keras import layers, ops

from export.training.hyper import ARCHITECTURES, Hyper
from workers.inference.spec import FeaturizerSpec

__all__ = ["INPUTS", "MemberWeights", "build", "idf_weights", "member_weights", "predict"]

F32 = npt.NDArray[np.float32]
INPUTS = ("word_ids", "char_ids")


def idf_weights(ids: npt.NDArray[np.int32], buckets: int) -> F32:
    """Smoothed inverse document frequency of every id over the rows of ``ids``
    (``log((1 + n) / (1 + df)) + 1``, as scikit-learn's); 0 for the padding id 0.
    Counted in chunks: no dense row x id matrix."""
    n = ids.shape[0]
    df = np.zeros(buckets + 1, np.int64)
    width = np.int64(buckets + 1)
    for start in range(0, n, 8192):
        block = ids[start : start + 8192].astype(np.int64)
        rows = np.arange(block.shape[0], dtype=np.int64)[:, None] * width
        pairs = np.unique((block + rows)[block > 0])  # one (row, id) pair per row and id
        np.add.at(df, pairs % width, 1)
    idf: F32 = (np.log((1.0 + n) / (1.0 + df)) + 1.0).astype(np.float32)
    idf[0] = 0.0
    return idf


class WeightedBag(layers.Layer):  # type: ignore[misc]
    """``sum_i w[id_i] E[id_i] / sqrt(sum_i w[id_i]^2)`` with ``w = relu(weights)`` and
    padding (id 0) weighted 0."""

    def __init__(self, initial: F32, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._initial = np.asarray(initial, np.float32)

    def build(self, input_shape: Any) -> None:
        self.table = self.add_weight(
            shape=self._initial.shape,
            initializer=keras.initializers.Constant(self._initial),
            name="id_weights",
        )

    def call(self, embedded: Any, ids: Any) -> Any:
        present = ops.cast(ops.not_equal(ids, 0), embedded.dtype)
        w = ops.relu(ops.take(self.table, ids)) * present
        total = ops.sum(embedded * ops.expand_dims(w, -1), axis=1)
        norm = ops.sqrt(ops.maximum(ops.sum(w * w, axis=1, keepdims=True), 1e-12))
        return total / norm


class MaskedMean(layers.Layer):  # type: ignore[misc]
    """Mean of the embeddings of the non-padding ids."""

    def call(self, embedded: Any, ids: Any) -> Any:
        present = ops.cast(ops.not_equal(ids, 0), embedded.dtype)
        count = ops.maximum(ops.sum(present, axis=1, keepdims=True), 1.0)
        return ops.sum(embedded * ops.expand_dims(present, -1), axis=1) / count


def build(
    spec: FeaturizerSpec,
    n_labels: int,
    hyper: Hyper,
    *,
    idf: tuple[F32, F32] | None = None,
    name: str | None = None,
) -> keras.Model:
    """The (uncompiled) network named by ``hyper.architecture``; ``bag`` needs the
    training rows' ``idf`` per input (:func:`idf_weights`)."""
    if hyper.architecture not in ARCHITECTURES:
        raise ValueError(
            f"unknown architecture {hyper.architecture!r}; pick one of {ARCHITECTURES}"
        )
    word_ids = keras.Input(shape=(spec.max_word_ids,), dtype="int32", name="word_ids")
    char_ids = keras.Input(shape=(spec.max_char_ids,), dtype="int32", name="char_ids")
    word_emb = layers.Embedding(spec.word_buckets + 1, hyper.dim, name="word_embedding")(word_ids)
    char_emb = layers.Embedding(spec.char_buckets + 1, hyper.dim, name="char_embedding")(char_ids)
    if hyper.architecture == "bag":
        if idf is None:
            raise ValueError("the bag network needs the training rows' idf weights")
        word_vec = WeightedBag(idf[0], name="word_bag")(word_emb, word_ids)
        char_vec = WeightedBag(idf[1], name="char_bag")(char_emb, char_ids)
    else:
        word_vec = MaskedMean(name="word_bag")(word_emb, word_ids)
        char_vec = MaskedMean(name="char_bag")(char_emb, char_ids)
    hidden = layers.Concatenate(name="bags")([word_vec, char_vec])
    hidden = layers.Dropout(hyper.dropout, name="dropout")(hidden)
    probs = layers.Dense(n_labels, activation="softmax", name="probs")(hidden)
    return keras.Model(inputs=[word_ids, char_ids], outputs=probs, name=name or hyper.architecture)


@dataclass(frozen=True)
class MemberWeights:
    """One trained network as arrays, in the form the ONNX graph uses.

    ``tables[k]`` is input ``k``'s embedding table with every row already multiplied by
    its id weight (``bag``; row 0, padding, is zero), ``squares[k]`` the squared id
    weights (``bag``) or ``None`` (``fasttext``: the bag is a mean over the non-padding
    ids); ``kernel`` [2*dim, leaves] and ``bias`` [leaves] the softmax layer's."""

    architecture: str
    tables: tuple[F32, F32]
    squares: tuple[F32, F32] | None
    kernel: F32
    bias: F32


def member_weights(model: keras.Model) -> MemberWeights:
    """The trained ``model``'s weights as :class:`MemberWeights`."""
    tables: list[F32] = []
    squares: list[F32] = []
    for prefix in ("word", "char"):
        table = np.array(model.get_layer(f"{prefix}_embedding").embeddings.numpy(), np.float32)
        table[0] = 0.0
        bag = model.get_layer(f"{prefix}_bag")
        if isinstance(bag, WeightedBag):
            w = np.maximum(np.asarray(bag.table.numpy(), np.float32), 0.0)
            w[0] = 0.0
            table *= w[:, None]
            squares.append(w * w)
        tables.append(table)
    kernel, bias = (np.asarray(v.numpy(), np.float32) for v in model.get_layer("probs").weights)
    arch = "bag" if squares else "fasttext"
    return MemberWeights(
        architecture=arch,
        tables=(tables[0], tables[1]),
        squares=(squares[0], squares[1]) if squares else None,
        kernel=kernel,
        bias=bias,
    )


def predict(model: keras.Model, x: dict[str, npt.NDArray[np.int32]], rows: Sequence[int]) -> F32:
    """Probabilities for ``rows`` of ``x``, in chunks (inference mode)."""
    out: list[F32] = []
    idx = np.asarray(rows, dtype=np.int64)
    for start in range(0, len(idx), 4096):
        chunk = idx[start : start + 4096]
        probs = model([x[k][chunk] for k in INPUTS], training=False)
        out.append(np.asarray(probs, np.float32))
    if not out:
        return np.zeros((0, model.output_shape[-1]), np.float32)
    return np.concatenate(out)
