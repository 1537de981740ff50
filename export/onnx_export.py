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
    import keras

    members = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    if model.name == "ensemble" and members:
        # One conversion per member, then one Mean node: tf2onnx on the whole ensemble
        # holds every member's embedding tables several times over (a three-model
        # ensemble went past 23 GB), one member at a time stays near one model's peak.
        proto = _mean_of([_convert(m, opset) for m in members])
    else:
        proto = _convert(model, opset)
    out.write_bytes(proto.SerializeToString())
    return out


def _convert(model: Any, opset: int) -> Any:
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
    return proto


def _mean_of(protos: list[Any]) -> Any:
    """One ONNX model feeding the shared inputs to every member graph and averaging
    their ``probs`` (names prefixed ``m0_``, ``m1_``...; the inputs stay shared)."""
    from onnx import compose, helper

    graphs = [
        compose.add_prefix_graph(p.graph, f"m{i}_", rename_inputs=False)
        for i, p in enumerate(protos)
    ]
    output = graphs[0].output[0].__deepcopy__()
    output.name = "probs"
    mean = helper.make_node("Mean", [g.output[0].name for g in graphs], ["probs"], name="mean")
    graph = helper.make_graph(
        [n for g in graphs for n in g.node] + [mean],
        "ensemble",
        list(graphs[0].input),
        [output],
        initializer=[t for g in graphs for t in g.initializer],
        value_info=[v for g in graphs for v in g.value_info],
    )
    merged = helper.make_model(graph, opset_imports=list(protos[0].opset_import))
    merged.ir_version = protos[0].ir_version
    return merged


def parity(model: Any, onnx_path: Path, feeds: dict[str, npt.NDArray[np.int32]]) -> float:
    """Largest absolute difference between Keras and onnxruntime outputs."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    (onnx_out,) = session.run(["probs"], {n: feeds[n] for n in names})
    keras_out = model([feeds[t.name.split(":")[0]] for t in model.inputs], training=False)
    return float(np.abs(np.asarray(keras_out) - np.asarray(onnx_out)).max())
