"""The charcnn candidate and ensembles export exactly, padding and trimming included.

Serving zeroes the padding rows of the embedding tables (``for_serving``) and
trims all-padding columns per batch; a convolution sees neighbouring positions,
so both must leave its output unchanged. Trained briefly on real myntra titles
with a tiny featurizer (no Kafka, no full pipeline).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from export.data.datasets import load_dataset
from export.training.hyper import Hyper
from workers.core.product import ProductText
from workers.inference.featurizer import Featurizer
from workers.inference.spec import FeaturizerSpec

pytestmark = pytest.mark.slow

SPEC = FeaturizerSpec(word_buckets=2**12, char_buckets=2**12)


def _trimmed(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """What serving feeds: trailing all-padding columns removed."""
    out = {}
    for name, ids in feeds.items():
        width = int(np.flatnonzero(ids.any(axis=0)).max()) + 1
        out[name] = ids[:, :width]
    return out


def _onnx_probs(path: Path, feeds: dict[str, np.ndarray]) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(["probs"], feeds)[0])


def test_charcnn_and_ensemble_keep_parity_after_serving_prep_and_onnx(
    data_dir: Path, tmp_path: Path
) -> None:
    from export.training.fit import fit
    from export.training.networks import average, build, for_serving
    from export.training.onnx_export import parity, to_onnx

    rows, _ = load_dataset("myntra_styles", data_dir, limit=700)
    labels = sorted({e.path for e in rows})
    y = np.array([labels.index(e.path) for e in rows], dtype=np.int64)
    x = Featurizer(SPEC).transform([ProductText.of(e) for e in rows])
    train, val = slice(0, 600), slice(600, 700)
    models = []
    for arch in ("fasttext", "charcnn"):
        model = build(SPEC, len(labels), Hyper(architecture=arch, dim=16, filters=16))
        fit(
            model,
            {k: v[train] for k, v in x.items()},
            y[train],
            np.ones(600, dtype=np.float32),
            {k: v[val] for k, v in x.items()},
            y[val],
            learning_rate=2e-2,
            batch_size=64,
            max_epochs=3,
            patience=3,
            seed=0,
            verbose=0,
            label_smoothing=0.1 if arch == "charcnn" else 0.0,
        )
        models.append(model)
    probe = {k: v[val] for k, v in x.items()}
    assert (probe["char_ids"] == 0).any(axis=1).all()  # every probe row has padding
    ensemble = average(models)
    before = np.asarray(ensemble.predict(probe, verbose=0))
    cnn_before = np.asarray(models[1].predict(probe, verbose=0))
    for model in models:
        for_serving(model)
    assert np.abs(np.asarray(ensemble.predict(probe, verbose=0)) - before).max() < 1e-5
    trimmed = _trimmed(probe)
    assert trimmed["char_ids"].shape[1] < SPEC.max_char_ids
    for model, reference, name in ((models[1], cnn_before, "cnn"), (ensemble, before, "ens")):
        path = to_onnx(model, tmp_path / f"{name}.onnx")
        assert parity(model, path, probe) < 1e-5
        assert np.abs(_onnx_probs(path, trimmed) - reference).max() < 1e-5
    # The trained CNN learned something on real titles (chance is 1/len(labels)).
    assert np.mean(cnn_before.argmax(axis=1) == y[val]) > 0.3
