"""The ONNX graph written from the networks' weights computes what Keras computes: every
candidate family, an ensemble, a temperature, on real English and Chinese rows, with the
padding columns trimmed as serving trims them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from export.data.datasets import load_dataset
from export.training.hyper import Hyper
from export.training.train import featurize, temper
from workers.core.product import ProductText
from workers.inference.featurizer import Featurizer
from workers.inference.spec import FeaturizerSpec

SPEC = FeaturizerSpec(word_buckets=4096, char_buckets=8192)


@pytest.fixture(scope="module")
def feats(data_dir: Path) -> dict[str, np.ndarray]:
    english, _ = load_dataset("bigbasket", data_dir, limit=150)
    chinese, _ = load_dataset("cn_ecommerce_products", data_dir, limit=150)
    items = [ProductText.of(e) for e in (*english, *chinese)]
    return featurize(Featurizer(SPEC), items)


def _network(arch: str, feats: dict[str, np.ndarray], seed: int, labels: int = 23) -> object:
    import keras

    from export.training.networks import build, idf_weights

    keras.utils.set_random_seed(seed)
    idf = (
        idf_weights(feats["word_ids"], SPEC.word_buckets),
        idf_weights(feats["char_ids"], SPEC.char_buckets),
    )
    model = build(SPEC, labels, Hyper(architecture=arch, dim=8), idf=idf)
    rng = np.random.default_rng(seed)
    # Trained-looking weights: spread embeddings and softmax, id weights moved off the
    # idf and some pushed below zero (the bag clips them at 0).
    model.set_weights([rng.normal(0, 0.5, w.shape).astype(np.float32) for w in model.get_weights()])
    return model


@pytest.mark.parametrize(
    ("archs", "temperature"),
    [(("bag",), 1.0), (("fasttext",), 1.0), (("bag", "bag"), 0.7), (("bag", "fasttext"), 2.5)],
)
def test_onnx_matches_keras(
    feats: dict[str, np.ndarray], archs: tuple[str, ...], temperature: float, tmp_path: Path
) -> None:
    from export.training.networks import member_weights, predict
    from export.training.onnx_export import parity, to_onnx

    rows = list(range(len(feats["word_ids"])))
    models = [_network(a, feats, seed) for seed, a in enumerate(archs)]
    reference = temper([predict(m, feats, rows) for m in models], temperature)
    path = to_onnx(
        [member_weights(m) for m in models], tmp_path / "m.onnx", temperature=temperature
    )
    assert parity(path, feats, reference) < 1e-5
    # The reference is not trivially flat: the models disagree with a uniform answer.
    assert float(reference.max(axis=1).mean()) > 1.5 / reference.shape[1]


def test_parity_notices_a_different_model(feats: dict[str, np.ndarray], tmp_path: Path) -> None:
    from export.training.networks import member_weights, predict
    from export.training.onnx_export import parity, to_onnx

    rows = list(range(len(feats["word_ids"])))
    a, b = _network("bag", feats, 0), _network("bag", feats, 1)
    path = to_onnx([member_weights(a)], tmp_path / "a.onnx")
    assert parity(path, feats, predict(b, feats, rows)) > 1e-3


def test_the_graph_reads_only_what_serving_feeds(
    feats: dict[str, np.ndarray], tmp_path: Path
) -> None:
    import onnxruntime as ort

    from export.training.networks import member_weights
    from export.training.onnx_export import to_onnx

    path = to_onnx([member_weights(_network("bag", feats, 0))], tmp_path / "m.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [(i.name, i.type) for i in session.get_inputs()] == [
        ("word_ids", "tensor(int32)"),
        ("char_ids", "tensor(int32)"),
    ]
    assert [o.name for o in session.get_outputs()] == ["probs"]
    # Any width: one column of padding only, and the full width, both run.
    for width in (1, feats["char_ids"].shape[1]):
        out = session.run(
            ["probs"],
            {"word_ids": feats["word_ids"][:4, :width], "char_ids": feats["char_ids"][:4, :width]},
        )[0]
        assert np.allclose(out.sum(axis=1), 1.0, atol=1e-5)
