"""The offline pipeline: load, clean, split, train candidates, pick, export, evaluate.

``prodcat train --data bigbasket --out var/bundles`` runs all of it (:func:`run`) and
leaves a verified bundle directory (ONNX + JSON + report). The evaluation is done on the
exported bundle through :class:`workers.inference.model.Classifier`, the same code the
workers serve with, on a test split grouped by normalized title.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt

from export.data.datasets import DATASETS
from export.errors import ExportError
from export.training.config import TrainConfig
from export.training.hyper import parse_candidate
from export.training.prepare import prepare
from export.training.train import ensemble_scores, featurize, train_candidate
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
    "tf2onnx",
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


def run(config: TrainConfig) -> Path:
    """Run the whole pipeline; returns the bundle directory."""
    from export.evaluation.evaluate import evaluate_bundle
    from export.training.networks import for_serving
    from export.training.onnx_export import ONNX_OPSET, parity, to_onnx
    from export.training.thresholds import choose_thresholds

    verbose = config.verbose if config.verbose is not None else (1 if sys.stdout.isatty() else 2)
    t_start = time.perf_counter()
    prep = prepare(config)
    log.info(
        "split: train=%d val=%d test=%d leaves=%d depth=%d",
        len(prep.train),
        len(prep.val),
        len(prep.test),
        len(prep.taxonomy),
        prep.taxonomy.depth,
    )
    featurizer = Featurizer(config.spec)
    feats = featurize(featurizer, [ProductText.of(e) for e in prep.examples])

    candidates: list[dict[str, Any]] = []
    members: list[tuple[int, ...]] = []
    models: list[Any] = []
    probs: list[npt.NDArray[np.float32]] = []
    for name in config.candidates:
        arch, seed_offset = parse_candidate(name)  # "fasttext@1": fasttext, seed + 1
        hyper = replace(config.hyper, architecture=arch)
        if config.max_epochs is not None:
            hyper = replace(hyper, max_epochs=config.max_epochs)
        log.info("training candidate %s", name)
        model, summary, val_probs = train_candidate(
            prep,
            feats,
            config.spec,
            hyper,
            seed=config.seed + seed_offset,
            verbose=verbose,
            name=name.replace("@", "_seed"),
        )
        summary["architecture"] = name
        log.info("candidate %s: %s", name, json.dumps(summary))
        members.append((len(models),))
        candidates.append(summary)
        models.append(model)
        probs.append(val_probs)
    for combo, summary in ensemble_scores(prep, config.candidates, probs):
        log.info("candidate %s: %s", summary["architecture"], json.dumps(summary))
        members.append(combo)
        candidates.append(summary)
    best = max(range(len(candidates)), key=lambda i: candidates[i]["val_weighted_f1"])
    chosen = candidates[best]
    if len(members[best]) == 1:
        best_model = models[members[best][0]]
    else:
        from export.training.networks import average

        best_model = average([models[i] for i in members[best]])
        chosen["params"] = int(best_model.count_params())
    log.info("chosen by validation weighted F1: %s", chosen["architecture"])
    # The members' validation probabilities are already known; the ensemble is their mean.
    val_probs = np.mean([probs[i] for i in members[best]], axis=0).astype(np.float32)
    thresholds = choose_thresholds(
        prep.taxonomy, val_probs, [prep.examples[i].path for i in prep.val], config.target_precision
    )

    fp = prep.fingerprint
    version = make_version(config, fp)
    root = config.out / version
    root.mkdir(parents=True, exist_ok=False)
    # Parity on real held-out rows: the trained model, its serving form (padding rows
    # zeroed, see networks.for_serving) and the exported ONNX must all agree.
    probe = {k: v[prep.test[:512] or prep.val[:512]] for k, v in feats.items()}
    reference = np.asarray(best_model.predict(probe, batch_size=512, verbose=0))
    best_model = for_serving(best_model)
    to_onnx(best_model, root / MODEL_FILE)
    served = np.asarray(best_model.predict(probe, batch_size=512, verbose=0))
    max_diff = max(
        parity(best_model, root / MODEL_FILE, probe), float(np.abs(served - reference).max())
    )
    if max_diff > 1e-5:
        raise ExportError(f"ONNX parity check failed: max |keras - onnx| = {max_diff:.2e} > 1e-5")
    train_seconds = time.perf_counter() - t_start
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
        model={"chosen": chosen["architecture"], "candidates": candidates},
        data=DataInfo(
            sources=list(config.data),
            labels_files=[str(p) for p in config.labels],
            limit=config.limit,
            fingerprint=fp,
            split=msgspec.convert(prep.split, SplitInfo),
            rows={"train": len(prep.train), "val": len(prep.val), "test": len(prep.test)},
            load_reports=prep.reports,
            leaf_counts=dict(
                Counter(format_path(prep.examples[i].path) for i in prep.train).most_common(20)
            ),
        ),
        packages=package_versions(),
        train_seconds=round(train_seconds, 1),
    )
    _write_metadata(root, meta)
    write_manifest(root)
    # TensorFlow's share of memory is not needed any more; the baseline needs room.
    del models, best_model, feats
    _release_tensorflow()
    # Evaluate the exported bundle through the serving code, then seal it again
    # with the evaluation and the report inside.
    evaluation = evaluate_bundle(root, prep, config)
    meta = msgspec.structs.replace(meta, evaluation=msgspec.convert(evaluation, Evaluation))
    _write_metadata(root, meta)
    write_manifest(root)
    log.info("bundle %s written in %.0f s", root, time.perf_counter() - t_start)
    return root
