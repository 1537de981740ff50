"""Write trained networks as one ONNX graph, built node by node from their weights, and
check parity.

The candidate networks are a handful of operations (embedding lookups, sums, a norm, one
matrix product, a softmax), so the graph is written directly with ``onnx.helper`` rather
than traced and converted: no TensorFlow in the export, no converter holding the model
several times over (tf2onnx on a three-model ensemble went past 23 GB), and a graph that is
exactly the arithmetic the serving path needs.

Graph, per member ``m`` and input ``k`` in (``word_ids``, ``char_ids``), ids int32
[B, L] with 0 for padding and L free (serving trims all-padding columns per batch)::

    bag:      v_k = ReduceSum(Gather(T_k, ids_k), 1)
                    / Sqrt(Max(ReduceSum(Gather(S_k, ids_k), 1), eps))
    fasttext: v_k = ReduceSum(Gather(T_k, ids_k), 1) / Max(ReduceSum(Cast(ids_k != 0), 1), 1)
    probs_m   = Softmax(Concat(v_word, v_char) @ (W / t) + b / t)
    probs     = Mean(probs_m over members)

``T_k`` is the embedding table with each row already multiplied by its id weight and row 0
zero, ``S_k`` the squared id weights (:class:`~export.training.networks.MemberWeights`),
and ``t`` the temperature calibrated on validation data (1 = none), folded into the
softmax layer so it costs nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from export.training.networks import INPUTS, MemberWeights

__all__ = ["ONNX_OPSET", "parity", "to_onnx"]

ONNX_OPSET = 17
_EPS = 1e-12


def to_onnx(members: Sequence[MemberWeights], out: Path, *, temperature: float = 1.0) -> Path:
    """Write ``members`` (their probabilities averaged) to ``out``.

    Inputs ``word_ids``/``char_ids`` (int32 [B, L]) and output ``probs`` (float32 [B,
    leaves]) are what :mod:`workers.inference.model` feeds and reads."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    if not members:
        raise ValueError("no members to export")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    nodes: list[Any] = []
    inits: list[Any] = []

    def const(name: str, value: npt.NDArray[Any]) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    axis1 = const("axis_1", np.array([1], np.int64))
    eps = const("eps", np.array(_EPS, np.float32))
    if any(member.squares is None for member in members):
        one = const("one", np.array(1.0, np.float32))
        zero_id = const("zero_id", np.array(0, np.int32))
    if all(member.squares is None for member in members):
        inits.pop(1)  # only the bag divides by a norm
        eps = ""
    counts: dict[str, str] = {}
    outputs: list[str] = []
    for m, member in enumerate(members):
        bags: list[str] = []
        for k, ids in enumerate(INPUTS):
            p = f"m{m}.{ids.removesuffix('_ids')}"
            table = const(f"{p}.table", member.tables[k])
            nodes.append(helper.make_node("Gather", [table, ids], [f"{p}.rows"]))
            nodes.append(
                helper.make_node("ReduceSum", [f"{p}.rows", axis1], [f"{p}.sum"], keepdims=0)
            )
            if member.squares is not None:
                squares = const(f"{p}.squares", member.squares[k])
                nodes += [
                    helper.make_node("Gather", [squares, ids], [f"{p}.w2"]),
                    helper.make_node("ReduceSum", [f"{p}.w2", axis1], [f"{p}.w2sum"], keepdims=1),
                    helper.make_node("Max", [f"{p}.w2sum", eps], [f"{p}.w2safe"]),
                    helper.make_node("Sqrt", [f"{p}.w2safe"], [f"{p}.norm"]),
                ]
                nodes.append(helper.make_node("Div", [f"{p}.sum", f"{p}.norm"], [f"{p}.bag"]))
            else:
                nodes.append(
                    helper.make_node(
                        "Div",
                        [f"{p}.sum", _count(ids, counts, nodes, axis1, one, zero_id)],
                        [f"{p}.bag"],
                    )
                )
            bags.append(f"{p}.bag")
        kernel = const(f"m{m}.kernel", member.kernel / np.float32(temperature))
        bias = const(f"m{m}.bias", member.bias / np.float32(temperature))
        out_name = "probs" if len(members) == 1 else f"m{m}.probs"
        nodes += [
            helper.make_node("Concat", bags, [f"m{m}.hidden"], axis=1),
            helper.make_node("MatMul", [f"m{m}.hidden", kernel], [f"m{m}.xw"]),
            helper.make_node("Add", [f"m{m}.xw", bias], [f"m{m}.logits"]),
            helper.make_node("Softmax", [f"m{m}.logits"], [out_name], axis=1),
        ]
        outputs.append(out_name)
    if len(members) > 1:
        nodes.append(helper.make_node("Mean", outputs, ["probs"]))
    leaves = int(members[0].bias.shape[0])
    graph = helper.make_graph(
        nodes,
        "prodcat",
        [
            helper.make_tensor_value_info(n, TensorProto.INT32, ["batch", f"{n}_len"])
            for n in INPUTS
        ],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", leaves])],
        inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", ONNX_OPSET)],
        producer_name="prodcat",
    )
    model.ir_version = 8  # onnxruntime >= 1.14 reads it
    onnx.checker.check_model(model)
    out.write_bytes(model.SerializeToString())
    return out


def _count(
    ids: str, counts: dict[str, str], nodes: list[Any], axis1: str, one: str, zero_id: str
) -> str:
    """``Max(number of non-padding ids, 1)`` per row, computed once per input."""
    from onnx import TensorProto, helper

    if ids not in counts:
        p = f"{ids}.count"
        nodes += [
            helper.make_node("Equal", [ids, zero_id], [f"{p}.pad"]),
            helper.make_node("Not", [f"{p}.pad"], [f"{p}.present"]),
            helper.make_node("Cast", [f"{p}.present"], [f"{p}.float"], to=TensorProto.FLOAT),
            helper.make_node("ReduceSum", [f"{p}.float", axis1], [f"{p}.sum"], keepdims=1),
            helper.make_node("Max", [f"{p}.sum", one], [p]),
        ]
        counts[ids] = p
    return counts[ids]


def parity(
    onnx_path: Path, feeds: dict[str, npt.NDArray[np.int32]], reference: npt.NDArray[np.float32]
) -> float:
    """Max |onnx - reference| on ``feeds``, run with the padding columns trimmed the way
    serving trims them (so a graph that depended on the padded width would fail here)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    trimmed = {}
    for name in INPUTS:
        ids = feeds[name]
        used = np.flatnonzero((ids != 0).any(axis=0))
        width = int(used[-1]) + 1 if used.size else 1
        trimmed[name] = np.ascontiguousarray(ids[:, :width])
    (got,) = session.run(["probs"], trimmed)
    return float(np.abs(np.asarray(got) - reference).max())
