"""Keras architectures over the shared featurizer's hashed n-gram ids.

Every candidate reads the same two inputs the featurizer produces, ``word_ids``
and ``char_ids`` (int32 [B, L], 0 = padding), and outputs ``probs``: a softmax
over the taxonomy's leaves.

* ``fasttext``: the fastText recipe. One embedding bag per input (masked mean),
  concatenated, then a linear softmax layer.
* ``twotower``: the word and character towers each keep their embedding bag
  (the fastText path) and add a non-linear ReLU projection of it; the softmax
  reads both. More capacity for interactions between n-grams, e.g. for Chinese,
  where character n-grams carry most of the signal.
* ``charcnn``: the fastText bags plus a small text CNN over the character
  n-gram ids in text order (the featurizer emits them by token, then offset,
  then n): a width-``kernel`` convolution and a masked max over positions, so
  neighbouring ids (the 3-, 4- and 5-grams at one offset and the next) combine
  into one feature. Padding positions are zeroed before the convolution, so
  serving's zeroed padding rows and trimmed padding columns change nothing.
  It costs two orders of magnitude more arithmetic per item than fastText and
  2-3x its training time; on myntra it scored below fastText on validation, so
  it is opt-in (``--candidates fasttext,twotower,charcnn`` or a registry
  entry's :class:`~export.data.datasets.TrainDefaults`).

When more than one candidate is trained, every *ensemble* of two or more (the
mean of their probabilities, exported as one ONNX graph) is scored on
validation data too and competes with them.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ start-up chatter out

from typing import Any

import keras
from keras import layers, ops

from export.training.hyper import ARCHITECTURES, DEFAULT_CANDIDATES, Hyper
from workers.inference.spec import FeaturizerSpec

__all__ = ["ARCHITECTURES", "DEFAULT_CANDIDATES", "Hyper", "average", "build", "for_serving"]


@keras.saving.register_keras_serializable(package="prodcat")
class MaskedMean(layers.Layer):  # type: ignore[misc]
    """Mean of the embeddings of the non-padding ids (id 0 is padding).

    For serving, :func:`for_serving` zeroes row 0 of the embedding tables and sets
    ``zero_padding``: padding then adds nothing to the sum, and the exported graph
    skips the [batch, length, dim] mask multiplication (a third of inference time).
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.zero_padding = False

    def call(self, embedded: Any, ids: Any) -> Any:
        present = ops.cast(ops.not_equal(ids, 0), embedded.dtype)
        count = ops.maximum(ops.sum(present, axis=1, keepdims=True), 1.0)
        if self.zero_padding:
            total = ops.sum(embedded, axis=1)
        else:
            total = ops.sum(embedded * ops.expand_dims(present, -1), axis=1)
        return total / count


@keras.saving.register_keras_serializable(package="prodcat")
class MaskedMax(layers.Layer):  # type: ignore[misc]
    """Max over the positions of non-negative features, padding positions excluded.

    The features are ReLU outputs (>= 0), so zeroing the padding positions before
    the max leaves the max over the real positions unchanged. Unlike
    :class:`MaskedMean`, the mask stays in the serving graph: a convolution over
    zero rows still yields its bias."""

    def call(self, features: Any, ids: Any) -> Any:
        present = ops.cast(ops.not_equal(ids, 0), features.dtype)
        return ops.max(features * ops.expand_dims(present, -1), axis=1)


@keras.saving.register_keras_serializable(package="prodcat")
class ZeroPad(layers.Layer):  # type: ignore[misc]
    """Zero the embeddings of padding positions, so a convolution window that
    overlaps the padding reads zeros in training exactly as in serving (where
    :func:`for_serving` zeroes the padding row of the table)."""

    def call(self, embedded: Any, ids: Any) -> Any:
        present = ops.cast(ops.not_equal(ids, 0), embedded.dtype)
        return embedded * ops.expand_dims(present, -1)


def _layers(model: Any) -> list[Any]:
    out: list[Any] = []
    for layer in model.layers:
        out.extend(_layers(layer) if isinstance(layer, keras.Model) else [layer])
    return out


def for_serving(model: keras.Model) -> keras.Model:
    """Prepare a trained model for export: zero the padding rows and let the bags skip
    masking. Outputs are unchanged (padding was masked out during training)."""
    for layer in _layers(model):
        if isinstance(layer, layers.Embedding):
            table = layer.embeddings
            table.assign(ops.concatenate([ops.zeros((1, table.shape[1])), table[1:]], axis=0))
        elif isinstance(layer, MaskedMean):
            layer.zero_padding = True
    return model


def build(
    spec: FeaturizerSpec, n_labels: int, hyper: Hyper, *, name: str | None = None
) -> keras.Model:
    """Build (uncompiled) the network named by ``hyper.architecture``; ``name`` (default:
    the architecture) must differ between the members of one :func:`average`."""
    if hyper.architecture not in ARCHITECTURES:
        raise ValueError(
            f"unknown architecture {hyper.architecture!r}; pick one of {ARCHITECTURES}"
        )
    word_ids = keras.Input(shape=(spec.max_word_ids,), dtype="int32", name="word_ids")
    char_ids = keras.Input(shape=(spec.max_char_ids,), dtype="int32", name="char_ids")
    word_emb = layers.Embedding(spec.word_buckets + 1, hyper.dim, name="word_embedding")(word_ids)
    char_emb = layers.Embedding(spec.char_buckets + 1, hyper.dim, name="char_embedding")(char_ids)
    word_vec = MaskedMean(name="word_bag")(word_emb, word_ids)
    char_vec = MaskedMean(name="char_bag")(char_emb, char_ids)
    if hyper.architecture == "fasttext":
        hidden = layers.Concatenate(name="bags")([word_vec, char_vec])
        hidden = layers.Dropout(hyper.dropout, name="dropout")(hidden)
    elif hyper.architecture == "charcnn":
        conv = layers.Conv1D(
            hyper.filters, hyper.kernel, padding="same", activation="relu", name="char_conv"
        )(ZeroPad(name="char_pad")(char_emb, char_ids))
        char_cnn = MaskedMax(name="char_pool")(conv, char_ids)
        hidden = layers.Concatenate(name="bags_conv")([word_vec, char_vec, char_cnn])
        hidden = layers.Dropout(hyper.dropout, name="dropout")(hidden)
    else:
        # Each tower keeps its linear bag (the fastText path) and adds a
        # non-linear projection of it; a residual-style concat lets the
        # softmax use both.
        word_h = layers.Dense(hyper.hidden // 2, activation="relu", name="word_tower")(word_vec)
        char_h = layers.Dense(hyper.hidden // 2, activation="relu", name="char_tower")(char_vec)
        hidden = layers.Concatenate(name="towers")([word_vec, char_vec, word_h, char_h])
        hidden = layers.Dropout(hyper.dropout, name="dropout")(hidden)
    probs = layers.Dense(n_labels, activation="softmax", name="probs")(hidden)
    return keras.Model(inputs=[word_ids, char_ids], outputs=probs, name=name or hyper.architecture)


def average(models: list[keras.Model]) -> keras.Model:
    """One model whose output is the mean of the given models' softmax outputs."""
    word_ids = keras.Input(shape=models[0].inputs[0].shape[1:], dtype="int32", name="word_ids")
    char_ids = keras.Input(shape=models[0].inputs[1].shape[1:], dtype="int32", name="char_ids")
    outputs = [m([word_ids, char_ids]) for m in models]
    probs = layers.Average(name="probs")(outputs)
    return keras.Model(inputs=[word_ids, char_ids], outputs=probs, name="ensemble")
