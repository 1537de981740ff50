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
    output is named ``probs``, which is what :mod:`workers.inference.model` feeds and reads.
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
    return direct_gathers(proto)


def direct_gathers(proto: Any) -> Any:
    """Let each embedding lookup read its ids input as it is, when that changes nothing.

    tf2onnx converts ``tf.gather(table, ids)`` to ``Gather(table, where(ids < 0, ids +
    rows, ids))`` in eight elementwise ops per table (ONNX Gather counts negative indices
    from the end, TensorFlow's does not accept them). The featurizer never produces a
    negative id (0 is padding, 1..buckets are real), so on every id the model can be fed
    that arithmetic is the identity, and it cost about a tenth of inference time. For each
    ``Gather`` over a 2-d initializer whose indices are computed from one graph input, the
    index computation is run on probe ids spanning the table (``0``, ``1``, ``rows - 1``
    and ids in between); only where it returns them unchanged is the ``Gather`` rewired to
    the input. Nodes nothing uses any more are dropped. ``parity`` still checks the result
    against Keras.
    """
    graph = proto.graph
    inputs = {i.name: i for i in graph.input}
    tables = {t.name: t for t in graph.initializer if len(t.dims) == 2}
    producer = {out: node for node in graph.node for out in node.output}
    rewired = False
    for node in graph.node:
        if node.op_type != "Gather" or node.input[0] not in tables or node.input[1] in inputs:
            continue
        source = _index_source(node.input[1], producer, inputs)
        if source is None:
            continue
        rows = int(tables[node.input[0]].dims[0])
        if _is_identity(proto, producer, node.input[1], source, rows):
            node.input[1] = source
            rewired = True
    if rewired:
        _drop_unused(graph)
    return proto


def _index_source(name: str, producer: dict[str, Any], inputs: dict[str, Any]) -> str | None:
    """The one graph input ``name`` is computed from (initializers and constants aside)."""
    found: set[str] = set()
    stack, seen = [name], set()
    while stack:
        value = stack.pop()
        if value in seen:
            continue
        seen.add(value)
        if value in inputs:
            found.add(value)
        elif value in producer:
            stack.extend(producer[value].input)
    return found.pop() if len(found) == 1 else None


def _is_identity(proto: Any, producer: dict[str, Any], output: str, source: str, rows: int) -> bool:
    """Whether the subgraph from ``source`` to ``output`` maps every probe id to itself."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    graph = proto.graph
    initializers = {t.name: t for t in graph.initializer}
    nodes, used, stack = [], set(), [output]
    while stack:  # the nodes between source and output, backwards
        value = stack.pop()
        if value in used or value == source or value in initializers:
            continue
        used.add(value)
        node = producer.get(value)
        if node is None:
            return False  # another graph input: not a function of ``source`` alone
        if node not in nodes:
            nodes.append(node)
            stack.extend(node.input)
    order = {id(n): i for i, n in enumerate(graph.node)}
    nodes.sort(key=lambda n: order[id(n)])
    needed = {name for n in nodes for name in n.input}
    sub = helper.make_graph(
        [*nodes, helper.make_node("Cast", [output], ["probe_ids"], to=TensorProto.INT64)],
        "index_probe",
        [next(i for i in graph.input if i.name == source)],
        [helper.make_tensor_value_info("probe_ids", TensorProto.INT64, None)],
        initializer=[t for name, t in initializers.items() if name in needed],
    )
    model = helper.make_model(sub, opset_imports=list(proto.opset_import))
    model.ir_version = proto.ir_version
    probe = np.unique(np.concatenate([[0, 1, rows - 1], np.linspace(0, rows - 1, 997)]))
    feed = probe.astype(np.int32).reshape(1, -1)  # the ids inputs are int32 [B, L]
    try:
        session = ort.InferenceSession(
            model.SerializeToString(), providers=["CPUExecutionProvider"]
        )
        (got,) = session.run(None, {source: feed})
    except Exception:  # not a subgraph onnxruntime runs on its own: leave the lookup alone
        return False
    return bool(np.array_equal(np.asarray(got), feed.astype(np.int64)))


def _drop_unused(graph: Any) -> None:
    """Remove nodes and initializers that no graph output depends on."""
    needed = {o.name for o in graph.output}
    kept = []
    for node in reversed(list(graph.node)):
        if any(out in needed for out in node.output):
            kept.append(node)
            needed.update(node.input)
    kept.reverse()
    del graph.node[:]
    graph.node.extend(kept)
    unused = [t for t in graph.initializer if t.name not in needed]
    for t in unused:
        graph.initializer.remove(t)


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
