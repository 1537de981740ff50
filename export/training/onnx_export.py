"""Write trained networks as one ONNX graph, built node by node from their weights, and
check parity.

The candidate networks are a handful of operations (embedding lookups, sums, a norm, one
matrix product, a softmax), so the graph is written directly with ``onnx.helper`` rather
than traced and converted: no TensorFlow in the export, no converter holding the model
several times over (tf2onnx on a three-model ensemble went past 23 GB), and a graph that is
exactly the arithmetic the serving path needs.

Graph, per input ``k`` in (``word_ids``, ``char_ids``), ids int32 [B, L] with 0 for
padding and L free (serving trims all-padding columns per batch), and member ``m``::

    sums_k    = ReduceSum(Gather(F_k, ids_k), 1)          # one lookup per id for all members
    bag:      v_mk = sums_k[T_mk columns] / Sqrt(Max(sums_k[S_mk column], eps))
    fasttext: v_mk = sums_k[T_mk columns] / Max(ReduceSum(Cast(ids_k != 0), 1), 1)
    probs_m   = Softmax(Concat(v_m,word, v_m,char) @ (W_m / t) + b_m / t)
    probs     = Mean(probs_m over members)

``F_k`` is every member's table side by side: ``T_mk``, the embedding table with each row
already multiplied by its id weight (row 0, padding, zero), then one column ``S_mk`` of
squared id weights per bag member (:class:`~export.training.networks.MemberWeights`). ``t``
is the temperature calibrated on validation data (1 = none), folded into the softmax layer
so it costs nothing.
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
    bags: list[list[str]] = [[] for _ in members]
    for k, ids in enumerate(INPUTS):
        p = ids.removesuffix("_ids")
        table, spans = _fused_table(members, k)
        nodes += [
            helper.make_node("Gather", [const(f"{p}.table", table), ids], [f"{p}.rows"]),
            helper.make_node("ReduceSum", [f"{p}.rows", axis1], [f"{p}.sums"], keepdims=0),
        ]
        for m, (start, end, square) in enumerate(spans):
            q = f"m{m}.{p}"
            nodes.append(_slice(f"{p}.sums", start, end, f"{q}.sum", const))
            if square is None:
                divisor = _count(ids, counts, nodes, axis1, one, zero_id)
            else:
                divisor = f"{q}.norm"
                nodes += [
                    _slice(f"{p}.sums", square, square + 1, f"{q}.w2sum", const),
                    helper.make_node("Max", [f"{q}.w2sum", eps], [f"{q}.w2safe"]),
                    helper.make_node("Sqrt", [f"{q}.w2safe"], [divisor]),
                ]
            nodes.append(helper.make_node("Div", [f"{q}.sum", divisor], [f"{q}.bag"]))
            bags[m].append(f"{q}.bag")
    outputs: list[str] = []
    for m, member in enumerate(members):
        kernel = const(f"m{m}.kernel", member.kernel / np.float32(temperature))
        bias = const(f"m{m}.bias", member.bias / np.float32(temperature))
        out_name = "probs" if len(members) == 1 else f"m{m}.probs"
        nodes += [
            helper.make_node("Concat", bags[m], [f"m{m}.hidden"], axis=1),
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


def _fused_table(
    members: Sequence[MemberWeights], k: int
) -> tuple[npt.NDArray[np.float32], list[tuple[int, int, int | None]]]:
    """One table for input ``k`` holding every member's embedding columns, then the bag
    members' squared id weights as one column each: one row lookup per id serves them
    all (the lookups are bound by memory latency, not bandwidth). Returns the table and,
    per member, its embedding columns ``[start, end)`` and its squares column (or None)."""
    columns: list[npt.NDArray[np.float32]] = []
    spans: list[tuple[int, int, int | None]] = []
    width = 0
    for member in members:
        columns.append(member.tables[k])
        spans.append((width, width + member.tables[k].shape[1], None))
        width += member.tables[k].shape[1]
    for m, member in enumerate(members):
        if member.squares is not None:
            columns.append(member.squares[k][:, None])
            spans[m] = (spans[m][0], spans[m][1], width)
            width += 1
    return np.concatenate(columns, axis=1).astype(np.float32), spans


def _slice(source: str, start: int, end: int, out: str, const: Any) -> Any:
    """Columns ``[start, end)`` of a [B, W] tensor."""
    from onnx import helper

    bounds = [
        const(f"{out}.{name}", np.array([value], np.int64))
        for name, value in (("start", start), ("end", end), ("axis", 1))
    ]
    return helper.make_node("Slice", [source, *bounds], [out])


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
