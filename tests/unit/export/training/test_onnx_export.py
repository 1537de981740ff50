"""``export.training.onnx_export.direct_gathers``: an embedding lookup reads its ids input directly
only where the index arithmetic in between is the identity on every id the featurizer
produces (tf2onnx's negative-index wrap), and the model's outputs do not change."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
from onnx import ModelProto, TensorProto, helper, numpy_helper

from export.training.onnx_export import direct_gathers

ROWS, DIM = 50, 4


def _model(index_nodes: list[object], index: str) -> ModelProto:
    """ids int32 [B, L] -> (index arithmetic) -> Gather(table) -> ReduceSum -> out."""
    table = np.arange(ROWS * DIM, dtype=np.float32).reshape(ROWS, DIM)
    graph = helper.make_graph(
        [
            *index_nodes,
            helper.make_node("Gather", ["table", index], ["gathered"]),
            helper.make_node("ReduceSum", ["gathered", "axes"], ["out"], keepdims=0),
        ],
        "bag",
        [helper.make_tensor_value_info("ids", TensorProto.INT32, [None, None])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [None, DIM])],
        initializer=[
            numpy_helper.from_array(table, "table"),
            numpy_helper.from_array(np.array([1], dtype=np.int64), "axes"),
            numpy_helper.from_array(np.array(ROWS, dtype=np.int32), "rows"),
            numpy_helper.from_array(np.array(0, dtype=np.int32), "zero"),
            numpy_helper.from_array(np.array(1, dtype=np.int32), "one"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def _negative_wrap() -> list[object]:
    """where(ids < 0, ids + rows, ids), as tf2onnx writes it for tf.gather."""
    return [
        helper.make_node("Less", ["ids", "zero"], ["neg"]),
        helper.make_node("Add", ["ids", "rows"], ["wrapped"]),
        helper.make_node("Where", ["neg", "wrapped", "ids"], ["index"]),
    ]


def _run(model: ModelProto, ids: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(["out"], {"ids": ids})[0])


IDS = np.array([[0, 1, 7, ROWS - 1], [3, 0, 0, 0]], dtype=np.int32)


def test_the_negative_index_wrap_is_removed_and_outputs_are_unchanged() -> None:
    before = _run(_model(_negative_wrap(), "index"), IDS)
    model = direct_gathers(_model(_negative_wrap(), "index"))
    assert [n.op_type for n in model.graph.node] == ["Gather", "ReduceSum"]
    assert model.graph.node[0].input[1] == "ids"
    assert "rows" not in {t.name for t in model.graph.initializer}  # unused now: dropped
    assert np.array_equal(_run(model, IDS), before)


def test_index_arithmetic_that_changes_ids_is_kept() -> None:
    shifted = [helper.make_node("Sub", ["ids", "one"], ["index"])]  # ids - 1: not identity
    model = direct_gathers(_model(shifted, "index"))
    assert [n.op_type for n in model.graph.node] == ["Sub", "Gather", "ReduceSum"]
    assert model.graph.node[1].input[1] == "index"
