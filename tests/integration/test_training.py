"""Train, export and serve small bundles on real slices of an English and a Chinese catalog.

No Kafka here: this is the offline half. Each bundle is trained once per module
(two epochs, a small featurizer) and then checked for ONNX parity, quality well
above chance on held-out rows, a TensorFlow-free serving process, and that
``prodcat predict`` gives the same answers as the evaluation.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import msgspec
import numpy as np
import onnx
import pytest

from export.pipeline import run
from export.training.config import TrainConfig
from export.training.prepare import Prepared, prepare, rebuild_split
from workers.core.errors import BundleError
from workers.core.product import ProductText
from workers.inference.bundle import load_bundle, read_metadata
from workers.inference.model import Classifier
from workers.inference.spec import FeaturizerSpec

pytestmark = pytest.mark.slow

SMALL_SPEC = FeaturizerSpec(word_buckets=2**15, char_buckets=2**15)
ROWS = 6000


def _train(data_dir: Path, out: Path, dataset: str, rows: int) -> Path:
    from export.training.hyper import Hyper

    config = TrainConfig(
        data=(dataset,),
        data_dir=data_dir,
        out=out,
        candidates=("fasttext",),
        limit=rows,
        max_epochs=8,
        baseline=True,
        spec=SMALL_SPEC,
        hyper=Hyper(dim=32, batch_size=64, learning_rate=2e-2, patience=8),
        verbose=0,
    )
    return run(config)


@pytest.fixture(scope="module", params=["bigbasket", "cn_ecommerce_products"])
def trained(
    request: pytest.FixtureRequest, data_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, Path]:
    dataset: str = request.param
    out = tmp_path_factory.mktemp(f"bundle-{dataset}")
    return dataset, _train(data_dir, out, dataset, rows=ROWS)


@pytest.fixture(scope="module")
def prepared(trained: tuple[str, Path], data_dir: Path) -> Prepared:
    """The trained bundle's data, split exactly as training split it (loaded once)."""
    dataset, root = trained
    return prepare(TrainConfig(data=(dataset,), data_dir=data_dir, out=root, limit=ROWS))


def test_bundle_is_complete_and_verified(trained: tuple[str, Path]) -> None:
    _, root = trained
    bundle = load_bundle(root)
    meta = bundle.metadata
    assert meta.labels and meta.featurizer and meta.thresholds and meta.packages
    assert meta.evaluation is not None and meta.data is not None and meta.onnx is not None
    assert meta.data.split.seed == 0
    assert meta.data.limit == ROWS
    assert meta.data.fingerprint
    assert meta.onnx.parity_max_abs_diff <= 1e-5
    assert (root / "report" / "report.md").is_file()
    assert (root / "report" / "coverage_precision.png").stat().st_size > 1000
    report = json.loads((root / "report" / "report.json").read_text())
    assert report["per_class"] and "baseline" in report
    # Every embedding lookup reads its ids input directly (no negative-index arithmetic).
    graph = onnx.load(str(bundle.model_path), load_external_data=False).graph
    gathers = [n for n in graph.node if n.op_type == "Gather"]
    assert gathers and {n.input[1] for n in gathers} == {"word_ids", "char_ids"}


def test_metadata_is_exactly_what_the_typed_reader_reads(trained: tuple[str, Path]) -> None:
    """Drift between training's writer and serving's reader: every key training wrote is
    a field of the Structs (nothing is dropped on reading), with the same value."""
    _, root = trained
    written = json.loads((root / "metadata.json").read_text(encoding="utf-8"))
    read = msgspec.to_builtins(read_metadata(root))
    assert read == written


def test_the_split_is_rebuilt_from_the_metadata(
    trained: tuple[str, Path], prepared: Prepared, data_dir: Path
) -> None:
    """``prodcat heldout`` and the review flags rebuild a bundle's own test split."""
    _, root = trained
    rebuilt = rebuild_split(load_bundle(root).metadata, data_dir)
    assert rebuilt.fingerprint == prepared.fingerprint
    assert rebuilt.test == prepared.test
    assert [rebuilt.examples[i] for i in rebuilt.test] == [
        prepared.examples[i] for i in prepared.test
    ]


def test_scores_well_above_chance(trained: tuple[str, Path], prepared: Prepared) -> None:
    _, root = trained
    bundle = load_bundle(root)
    ev = bundle.evaluation
    prep = prepared
    test_paths = Counter(prep.examples[i].path for i in prep.test)
    majority = test_paths.most_common(1)[0][1] / sum(test_paths.values())
    assert len(bundle.taxonomy) > 50
    assert majority < 0.1
    assert ev is not None
    assert ev.ours["accuracy"] > 5 * majority
    assert ev.ours["accuracy"] > 0.4
    assert ev.ours["top3_accuracy"] > ev.ours["accuracy"]
    assert ev.ours["top_level_accuracy"] > 0.7
    assert ev.baseline is not None and ev.baseline["weighted_f1"] > 0.3  # same split


def test_rescoring_reproduces_recorded_evaluation(
    trained: tuple[str, Path], prepared: Prepared
) -> None:
    """The split is deterministic and serving is the evaluation path: re-scoring the
    held-out rows through Classifier gives exactly the recorded accuracy."""
    _, root = trained
    bundle = load_bundle(root)
    prep = prepared
    classifier = Classifier(bundle)
    items = [ProductText.of(prep.examples[i]) for i in prep.test]
    truth = [prep.examples[i].path for i in prep.test]
    decisions = [
        d for s in range(0, len(items), 500) for d in classifier.classify(items[s : s + 500])
    ]
    acc = np.mean([d.alternatives[0].path == t for d, t in zip(decisions, truth, strict=True)])
    assert bundle.evaluation is not None
    assert acc == pytest.approx(bundle.evaluation.ours["accuracy"], abs=1e-9)


def test_serving_process_never_imports_tensorflow(
    trained: tuple[str, Path], tmp_path: Path
) -> None:
    _, root = trained
    code = (
        "import sys, json\n"
        "from workers.inference.model import Classifier\n"
        "from workers.core.product import ProductText\n"
        f"c = Classifier.from_path(__import__('pathlib').Path({str(root)!r}))\n"
        "d = c.classify([ProductText(title='Aashirvaad Whole Wheat Atta 5 kg', brand='Aashirvaad'),"
        " ProductText(title='Apple iPhone 6 (A1586) 16GB 金色 移动联通电信4G手机')])\n"
        "print(json.dumps({'tf': [m for m in sys.modules if m.split('.')[0] in"
        " ('tensorflow', 'keras', 'tf2onnx')], 'n': len(d)}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"tf": [], "n": 2}


def test_predict_cli_matches_serving(
    trained: tuple[str, Path], tmp_path: Path, prepared: Prepared
) -> None:
    _, root = trained
    prep = prepared
    rows = [prep.examples[i] for i in prep.test[:300]]
    src = tmp_path / "products.jsonl"
    with src.open("w", encoding="utf-8") as fh:
        for ex in rows:
            fh.write(
                json.dumps(
                    {
                        "product_id": ex.product_id,
                        "title": ex.title,
                        "brand": ex.brand,
                        "description": ex.description,
                        "attributes": ex.attributes,
                    },
                    ensure_ascii=False,
                )
                + "\n"
            )
    out = tmp_path / "pred.jsonl"
    env = {**os.environ, "PRODCAT_LOG_LEVEL": "WARNING"}
    subprocess.run(
        [
            sys.executable,
            "-m",
            "workers.cli",
            "predict",
            str(src),
            "--bundle",
            str(root),
            "--out",
            str(out),
            "--batch-size",
            "64",
        ],
        check=True,
        env=env,
    )
    preds = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    expected = Classifier(load_bundle(root)).classify([ProductText.of(e) for e in rows])
    assert [p["product_id"] for p in preds] == [e.product_id for e in rows]
    assert [tuple(p["category_path"]) for p in preds] == [d.path for d in expected]
    assert Counter(p["model_version"] for p in preds) == Counter({load_bundle(root).version: 300})


def test_tampered_bundle_is_refused(trained: tuple[str, Path], tmp_path: Path) -> None:
    import shutil

    _, root = trained
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    meta = json.loads((copy / "metadata.json").read_text())
    meta["thresholds"]["leaf"] = 0.0
    (copy / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError, match=r"metadata\.json: sha256"):
        load_bundle(copy)
    shutil.copytree(root, tmp_path / "copy2")
    with (tmp_path / "copy2" / "model.onnx").open("r+b") as fh:
        fh.truncate(1000)
    with pytest.raises(BundleError, match=r"model\.onnx"):
        load_bundle(tmp_path / "copy2")


def test_unsupported_featurizer_spec_is_refused(trained: tuple[str, Path], tmp_path: Path) -> None:
    import shutil

    from workers.inference.bundle import write_manifest

    _, root = trained
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    meta = json.loads((copy / "metadata.json").read_text())
    meta["featurizer"]["version"] = 99
    (copy / "metadata.json").write_text(json.dumps(meta))
    write_manifest(copy)  # a well-formed bundle, just from an unknown featurizer
    with pytest.raises(BundleError, match="not supported"):
        load_bundle(copy)
