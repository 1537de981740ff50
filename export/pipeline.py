"""The offline pipeline: load, clean, split, train candidates, pick, export, evaluate.

``prodcat train --data bigbasket --out var/bundles`` runs all of it (:func:`run`) and
leaves a verified bundle directory (ONNX + JSON + report). The evaluation is done on the
exported bundle through :class:`workers.inference.model.Classifier`, the same code the
workers serve with, on a test split grouped by normalized title.
"""

from __future__ import annotations

import logging
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from pathlib import Path

import msgspec

from export.data.datasets import DATASETS
from export.errors import ExportError
from export.training.config import TrainConfig
from export.training.prepare import prepare
from workers.core.categories import format_path
from workers.core.product import ProductText
from workers.inference.bundle import METADATA_FILE, MODEL_FILE, write_manifest
from workers.inference.featurizer import Featurizer
from workers.inference.metadata import (
    BUNDLE_FORMAT,
    BundleMetadata,
    DataInfo,
    Evaluation,
    OnnxInfo,
    SplitInfo,
    encode_metadata,
)

__all__ = ["make_version", "package_versions", "run"]

log = logging.getLogger("prodcat.train")

_PACKAGES = (
    "prodcat",
    "tensorflow-cpu",
    "tensorflow",
    "keras",
    "onnx",
    "onnxruntime",
    "numpy",
    "scikit-learn",
)


def package_versions() -> dict[str, str]:
    out: dict[str, str] = {}
    for name in _PACKAGES:
        try:
            out[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            continue
    return out


def make_version(config: TrainConfig, fp: str) -> str:
    if config.version:
        return config.version
    name = "-".join(Path(d).stem if d not in DATASETS else d for d in config.data)
    stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    return f"{name}-{stamp}-{fp[:8]}"


def _release_tensorflow() -> None:
    import gc

    import keras

    keras.backend.clear_session()
    gc.collect()


def _write_metadata(root: Path, meta: BundleMetadata) -> None:
    (root / METADATA_FILE).write_bytes(encode_metadata(meta))


@contextmanager
def _staging(out: Path, version: str) -> Iterator[Path]:
    """A private directory beside the bundle's final place; renamed to it when the block
    succeeds, removed when it fails, so a failed run leaves no bundle behind."""
    final = out / version
    if final.exists():
        raise ExportError(f"{final} exists already; pick another --version or --out")
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{version}.", suffix=".partial", dir=out))
    try:
        yield staging
        staging.chmod(0o755)
        staging.rename(final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def run(config: TrainConfig) -> Path:
    """Run the whole pipeline; returns the bundle directory."""
    from export.evaluation.evaluate import evaluate_bundle
    from export.training.onnx_export import ONNX_OPSET, parity, to_onnx
    from export.training.train import featurize, fit_model, temper

    verbose = config.verbose if config.verbose is not None else (1 if sys.stdout.isatty() else 2)
    t_start = time.perf_counter()
    prep = prepare(config)
    featurizer = Featurizer(config.spec)
    feats = featurize(featurizer, [ProductText.of(e) for e in prep.examples])
    probe = list(prep.test[:512] or prep.val[:512])
    fitted = fit_model(config, prep, feats, probe=probe, verbose=verbose)
    chosen, temperature, refit = fitted.chosen, fitted.temperature, fitted.hyper.refit
    thresholds = fitted.thresholds
    fp = prep.fingerprint
    version = make_version(config, fp)
    with _staging(config.out, version) as root:
        to_onnx([m.weights for m in chosen], root / MODEL_FILE, temperature=temperature)
        # Parity on real held-out rows: the trained networks (their probabilities with
        # the temperature applied) and the exported graph must agree.
        reference = temper([m.probe_probs for m in chosen], temperature)
        max_diff = parity(root / MODEL_FILE, {k: v[probe] for k, v in feats.items()}, reference)
        if max_diff > 1e-5:
            raise ExportError(
                f"ONNX parity check failed: max |keras - onnx| = {max_diff:.2e} > 1e-5"
            )
        meta = BundleMetadata(
            format=BUNDLE_FORMAT,
            version=version,
            created_at=datetime.now(UTC),
            labels=[list(p) for p in prep.taxonomy.leaves],
            featurizer=config.spec.to_dict(),
            thresholds=thresholds.to_dict(),
            onnx=OnnxInfo(
                opset=ONNX_OPSET,
                inputs=["word_ids", "char_ids"],
                output="probs",
                parity_max_abs_diff=max_diff,
            ),
            model={
                "chosen": fitted.choice.summary["architecture"],
                "members": [m.name for m in chosen],
                "temperature": temperature,
                "candidates": fitted.options,
                "data_shape": fitted.shape.to_dict(),
                "defaults": fitted.reasons,
            },
            data=DataInfo(
                sources=list(config.data),
                labels_files=[str(p) for p in config.labels],
                limit=config.limit,
                fingerprint=fp,
                split=msgspec.convert(prep.split, SplitInfo),
                rows={"train": len(prep.train), "val": len(prep.val), "test": len(prep.test)},
                load_reports=prep.reports,
                # every leaf: the prior the feedback app's drift metric compares with
                leaf_counts=dict(
                    Counter(format_path(prep.examples[i].path) for i in prep.train).most_common()
                ),
            ),
            packages=package_versions(),
            train_seconds=round(time.perf_counter() - t_start, 1),
        )
        _write_metadata(root, meta)
        write_manifest(root)
        # TensorFlow's share of memory is not needed any more; the baseline needs room.
        del fitted, chosen, feats
        _release_tensorflow()
        # Evaluate the exported bundle through the serving code, then seal it again
        # with the evaluation and the report inside.
        evaluation = evaluate_bundle(root, prep, config, refit=refit)
        meta = msgspec.structs.replace(meta, evaluation=msgspec.convert(evaluation, Evaluation))
        _write_metadata(root, meta)
        write_manifest(root)
    root = config.out / version
    log.info("bundle %s written in %.0f s", root, time.perf_counter() - t_start)
    return root
