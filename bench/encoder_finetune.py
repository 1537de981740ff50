"""all-MiniLM-L6-v2 fine-tuned end to end as a classifier, in TensorFlow (for
``bench.encoder_probe --finetune EPOCHS``).

The encoder's weights (:class:`bench.encoder_probe.MiniLM`) become trainable variables; a
linear layer over the mean-pooled last layer gives the leaf logits. AdamW (weight decay
0.01), batches of 32, the learning rate decaying linearly to 0 over all epochs, dropout 0.1
after attention and feed-forward outputs, titles cut to 48 word pieces. No early stopping
and no look at the test rows: the model after the last epoch is scored.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.special import log_softmax

from bench.encoder_probe import MiniLM

MAX_PIECES = 48
BATCH = 32


def _ids(encoder: MiniLM, texts: Sequence[str]) -> npt.NDArray[np.int32]:
    out = np.zeros((len(texts), MAX_PIECES), dtype=np.int32)
    for row, text in enumerate(texts):
        pieces = encoder.tokenizer.encode(text)[:MAX_PIECES]
        out[row, : len(pieces)] = pieces
    return out


def finetune(
    encoder: MiniLM,
    train_texts: Sequence[str],
    train_labels: npt.NDArray[np.int64],
    test_texts: Sequence[str],
    classes: int,
    *,
    epochs: int,
    learning_rate: float = 2e-4,
    seed: int = 0,
) -> npt.NDArray[np.float64]:
    """Fine-tune on the training rows; return the test rows' log-probabilities."""
    import tensorflow as tf

    tf.random.set_seed(seed)
    weights = {k: tf.Variable(v) for k, v in encoder.w.items() if k.startswith(("emb", "enc"))}
    head_w = tf.Variable(tf.random.normal((encoder.HIDDEN, classes), stddev=0.02, seed=seed))
    head_b = tf.Variable(tf.zeros((classes,)))
    heads, width = encoder.HEADS, encoder.HIDDEN // encoder.HEADS

    def norm(x: Any, name: str) -> Any:
        mean, var = tf.nn.moments(x, axes=[-1], keepdims=True)
        return (x - mean) / tf.sqrt(var + 1e-12) * weights[name + ".weight"] + weights[
            name + ".bias"
        ]

    def dense(x: Any, name: str) -> Any:
        return tf.matmul(x, weights[name + ".weight"], transpose_b=True) + weights[name + ".bias"]

    @tf.function  # type: ignore[untyped-decorator]
    def forward(ids: Any, training: bool) -> Any:
        mask = tf.cast(ids > 0, tf.float32)
        n, length = tf.shape(ids)[0], tf.shape(ids)[1]
        x = (
            tf.gather(weights["embeddings.word_embeddings.weight"], ids)
            + weights["embeddings.position_embeddings.weight"][:length][None]
            + weights["embeddings.token_type_embeddings.weight"][0]
        )
        x = norm(x, "embeddings.LayerNorm")
        blocked = (1.0 - mask)[:, None, None, :] * -1e9

        def split(t: Any) -> Any:
            return tf.transpose(tf.reshape(t, (n, length, heads, width)), (0, 2, 1, 3))

        for layer in range(encoder.LAYERS):
            p = f"encoder.layer.{layer}."
            q, k, v = (
                split(dense(x, p + f"attention.self.{m}")) for m in ("query", "key", "value")
            )
            a = tf.nn.softmax(tf.matmul(q, k, transpose_b=True) / math.sqrt(width) + blocked)
            context = tf.reshape(
                tf.transpose(tf.matmul(a, v), (0, 2, 1, 3)), (n, length, encoder.HIDDEN)
            )
            h = dense(context, p + "attention.output.dense")
            x = norm(
                x + (tf.nn.dropout(h, 0.1) if training else h), p + "attention.output.LayerNorm"
            )
            f = dense(
                tf.nn.gelu(dense(x, p + "intermediate.dense"), approximate=True),
                p + "output.dense",
            )
            x = norm(x + (tf.nn.dropout(f, 0.1) if training else f), p + "output.LayerNorm")
        pooled = tf.reduce_sum(x * mask[..., None], 1) / tf.reduce_sum(mask, 1, keepdims=True)
        return tf.matmul(pooled, head_w) + head_b

    params = [*weights.values(), head_w, head_b]
    train_ids, test_ids = _ids(encoder, train_texts), _ids(encoder, test_texts)
    total = math.ceil(len(train_ids) / BATCH) * epochs
    schedule = tf.keras.optimizers.schedules.PolynomialDecay(learning_rate, total, 0.0)
    optimizer = tf.keras.optimizers.AdamW(learning_rate=schedule, weight_decay=0.01)

    @tf.function  # type: ignore[untyped-decorator]
    def step(ids: Any, labels: Any) -> Any:
        with tf.GradientTape() as tape:
            logits = forward(ids, True)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
        optimizer.apply_gradients(zip(tape.gradient(loss, params), params, strict=True))
        return loss

    rng = np.random.default_rng(seed)
    for epoch in range(epochs):
        started, losses = time.perf_counter(), []
        order = rng.permutation(len(train_ids))
        for start in range(0, len(order), BATCH):
            batch = order[start : start + BATCH]
            losses.append(
                float(step(tf.constant(train_ids[batch]), tf.constant(train_labels[batch])))
            )
        print(
            f"fine-tune epoch {epoch + 1}/{epochs}: loss {np.mean(losses):.3f} "
            f"({time.perf_counter() - started:.0f} s)",
            file=sys.stderr,
        )
    logits = np.concatenate(
        [
            forward(tf.constant(test_ids[s : s + 256]), False).numpy()
            for s in range(0, len(test_ids), 256)
        ]
    )
    out: npt.NDArray[np.float64] = log_softmax(logits.astype(np.float64), axis=1)
    return out
