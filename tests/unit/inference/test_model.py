"""``Classifier`` splits a large batch into runs of items of similar length: the answers
are those of one run over the whole batch, row for row (a small embedding-bag ONNX model
built here, real catalog titles)."""

from __future__ import annotations

import itertools
from pathlib import Path

import msgspec
import numpy as np
import pytest

import workers.inference.model as model_module
from export.data.datasets import load_dataset
from workers.core.product import ProductText
from workers.inference.bundle import Bundle
from workers.inference.metadata import BUNDLE_FORMAT, BundleMetadata
from workers.inference.model import RUN_SLICE, Classifier
from workers.inference.spec import FeaturizerSpec
from workers.inference.taxonomy import Taxonomy, Thresholds

onnx = pytest.importorskip("onnx")
helper, TensorProto = onnx.helper, onnx.TensorProto

BUCKETS, DIM = 4096, 8


def embedding_bag_model(path: Path, leaves: int, seed: int = 0) -> None:
    """word/char ids -> masked mean of embeddings -> dense -> softmax (dynamic widths)."""
    rng = np.random.default_rng(seed)
    inits, nodes = [], []
    for name in ("word", "char"):
        table = rng.normal(size=(BUCKETS + 1, DIM)).astype(np.float32)
        table[0] = 0.0  # padding row
        inits.append(helper.make_tensor(f"{name}_table", TensorProto.FLOAT, table.shape, table))
        nodes += [
            helper.make_node("Gather", [f"{name}_table", f"{name}_ids"], [f"{name}_emb"]),
            helper.make_node("ReduceSum", [f"{name}_emb", "axis1"], [f"{name}_sum"], keepdims=0),
            helper.make_node("Cast", [f"{name}_ids"], [f"{name}_f"], to=TensorProto.FLOAT),
            helper.make_node("Sign", [f"{name}_f"], [f"{name}_mask"]),
            helper.make_node("ReduceSum", [f"{name}_mask", "axis1"], [f"{name}_n"], keepdims=1),
            helper.make_node("Max", [f"{name}_n", "one"], [f"{name}_d"]),
            helper.make_node("Div", [f"{name}_sum", f"{name}_d"], [f"{name}_mean"]),
        ]
    dense = rng.normal(size=(2 * DIM, leaves)).astype(np.float32)
    inits += [
        helper.make_tensor("axis1", TensorProto.INT64, [1], [1]),
        helper.make_tensor("one", TensorProto.FLOAT, [], [1.0]),
        helper.make_tensor("dense", TensorProto.FLOAT, dense.shape, dense),
    ]
    nodes += [
        helper.make_node("Concat", ["word_mean", "char_mean"], ["bags"], axis=1),
        helper.make_node("MatMul", ["bags", "dense"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=-1),
    ]
    graph = helper.make_graph(
        nodes,
        "bag",
        [
            helper.make_tensor_value_info("word_ids", TensorProto.INT32, ["n", "w"]),
            helper.make_tensor_value_info("char_ids", TensorProto.INT32, ["n", "c"]),
        ],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["n", leaves])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(path))


@pytest.fixture(scope="module")
def rows(data_dir: Path) -> list[ProductText]:
    """Real titles of very different lengths: bigbasket with brands, Chinese titles."""
    out: list[ProductText] = []
    for name in ("bigbasket", "cn_ecommerce_products"):
        examples, _ = load_dataset(name, data_dir, limit=400)
        out += [ProductText.of(e) for e in examples]
    return out[::2] + out[1::2]  # mixed


@pytest.fixture(scope="module")
def classifier(tmp_path_factory: pytest.TempPathFactory) -> Classifier:
    root = tmp_path_factory.mktemp("bundle")
    leaves = [("a", f"x{i}") for i in range(6)] + [("b", f"y{i}") for i in range(5)]
    embedding_bag_model(root / "model.onnx", len(leaves))
    bundle = Bundle(
        root=root,
        sha256="0" * 64,
        metadata=msgspec.convert(
            {
                "format": BUNDLE_FORMAT,
                "version": "test-bag",
                "created_at": "2026-01-01T00:00:00Z",
                "labels": [list(p) for p in sorted(leaves)],
                "featurizer": {},
                "thresholds": {},
            },
            BundleMetadata,
        ),
        featurizer=FeaturizerSpec(word_buckets=BUCKETS, char_buckets=BUCKETS),
        taxonomy=Taxonomy.from_unsorted(leaves),
        thresholds=Thresholds(leaf=0.5, by_depth={1: 0.6}),
    )
    return Classifier(bundle)


def test_sliced_runs_match_one_run_row_for_row(
    classifier: Classifier, rows: list[ProductText], monkeypatch: pytest.MonkeyPatch
) -> None:
    batch = rows[:700]
    assert len(batch) >= 4 * RUN_SLICE
    sliced = classifier.scores(batch)
    monkeypatch.setattr(model_module, "RUN_SLICE", 10**9)  # one run for the whole batch
    whole = classifier.scores(batch)
    alone = np.concatenate([classifier.scores([item]) for item in batch[:50]])
    np.testing.assert_allclose(sliced, whole, rtol=0, atol=2e-6)
    np.testing.assert_allclose(sliced[:50], alone, rtol=0, atol=2e-6)
    assert (sliced.argmax(axis=1) == whole.argmax(axis=1)).all()
    # the lengths really differ, so the slices had different widths
    widths = np.count_nonzero(classifier.featurizer.transform(batch)["char_ids"], axis=1)
    assert widths.min() * 4 < widths.max()


def test_classify_answers_do_not_depend_on_slicing(
    classifier: Classifier, rows: list[ProductText], monkeypatch: pytest.MonkeyPatch
) -> None:
    batch = list(itertools.islice(itertools.cycle(rows), 3 * RUN_SLICE + 17))
    sliced = classifier.classify(batch)
    monkeypatch.setattr(model_module, "RUN_SLICE", 10**9)
    whole = classifier.classify(batch)
    assert [d.category_id for d in sliced] == [d.category_id for d in whole]
    assert [d.needs_review for d in sliced] == [d.needs_review for d in whole]
    assert len({d.category_id for d in sliced}) > 1
