"""Export a trained Keras network to ONNX with tf2onnx, and check parity."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ start-up chatter out

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

ONNX_OPSET = 17


def to_onnx(model: Any, out: Path, *, opset: int = ONNX_OPSET) -> Path:
    """Trace the Keras model as a tf.function and convert it at a pinned opset.

    Inputs keep their names (``word_ids``, ``char_ids``, int32 [B, any L]) and the
    output is named ``probs``, which is what :mod:`workers.model` feeds and reads.
    """
    import tensorflow as tf
    import tf2onnx

    # Width is left dynamic: serving trims all-padding columns per batch.
    signature = tuple(
        tf.TensorSpec((None, None), tf.int32, name=t.name.split(":")[0]) for t in model.inputs
    )

    @tf.function(input_signature=signature)  # type: ignore[untyped-decorator]
    def serve(*inputs: Any) -> dict[str, Any]:
        return {"probs": model(list(inputs), training=False)}

    proto, _ = tf2onnx.convert.from_function(serve, input_signature=signature, opset=opset)
    out.write_bytes(proto.SerializeToString())
    return out


def parity(model: Any, onnx_path: Path, feeds: dict[str, npt.NDArray[np.int32]]) -> float:
    """Largest absolute difference between Keras and onnxruntime outputs."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    (onnx_out,) = session.run(["probs"], {n: feeds[n] for n in names})
    keras_out = model([feeds[t.name.split(":")[0]] for t in model.inputs], training=False)
    return float(np.abs(np.asarray(keras_out) - np.asarray(onnx_out)).max())
