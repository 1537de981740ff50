"""Keras architectures over the shared featurizer's hashed n-gram ids.

Both candidates read the same two inputs the featurizer produces, ``word_ids``
and ``char_ids`` (int32 [B, L], 0 = padding), and output ``probs``: a softmax
over the taxonomy's leaves.

* ``fasttext``: the fastText recipe. One embedding bag per input (masked mean),
  concatenated, then a linear softmax layer.
* ``twotower``: the word and character towers each keep their embedding bag
  (the fastText path) and add a non-linear ReLU projection of it; the softmax
  reads both. More capacity for interactions between n-grams, e.g. for Chinese,
  where character n-grams carry most of the signal.

When more than one candidate is trained, their *ensemble* (the mean of their
probabilities, exported as one ONNX graph) is scored on validation data too
and competes with them.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ start-up chatter out

from dataclasses import asdict, dataclass
from typing import Any

import keras
from keras import layers, ops

from workers.featurizer import FeaturizerSpec

ARCHITECTURES = ("fasttext", "twotower")


@dataclass(frozen=True)
class Hyper:
    architecture: str = "fasttext"
    dim: int = 64
    hidden: int = 512
    dropout: float = 0.5
    learning_rate: float = 1e-2
    batch_size: int = 128
    max_epochs: int = 20
    patience: int = 3
    class_weight_power: float = 0.5

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@keras.saving.register_keras_serializable(package="prodcat")
class MaskedMean(layers.Layer):  # type: ignore[misc]
    """Mean of the embeddings of the non-padding ids (id 0 is padding)."""

    def call(self, embedded: Any, ids: Any) -> Any:
        mask = ops.expand_dims(ops.cast(ops.not_equal(ids, 0), embedded.dtype), -1)
        total = ops.sum(embedded * mask, axis=1)
        count = ops.maximum(ops.sum(mask, axis=1), 1.0)
        return total / count


def build(spec: FeaturizerSpec, n_labels: int, hyper: Hyper) -> keras.Model:
    """Build (uncompiled) the network named by ``hyper.architecture``."""
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
    else:
        # Each tower keeps its linear bag (the fastText path) and adds a
        # non-linear projection of it; a residual-style concat lets the
        # softmax use both.
        word_h = layers.Dense(hyper.hidden // 2, activation="relu", name="word_tower")(word_vec)
        char_h = layers.Dense(hyper.hidden // 2, activation="relu", name="char_tower")(char_vec)
        hidden = layers.Concatenate(name="towers")([word_vec, char_vec, word_h, char_h])
        hidden = layers.Dropout(hyper.dropout, name="dropout")(hidden)
    probs = layers.Dense(n_labels, activation="softmax", name="probs")(hidden)
    return keras.Model(inputs=[word_ids, char_ids], outputs=probs, name=hyper.architecture)


def average(models: list[keras.Model]) -> keras.Model:
    """One model whose output is the mean of the given models' softmax outputs."""
    word_ids = keras.Input(shape=models[0].inputs[0].shape[1:], dtype="int32", name="word_ids")
    char_ids = keras.Input(shape=models[0].inputs[1].shape[1:], dtype="int32", name="char_ids")
    outputs = [m([word_ids, char_ids]) for m in models]
    probs = layers.Average(name="probs")(outputs)
    return keras.Model(inputs=[word_ids, char_ids], outputs=probs, name="ensemble")
