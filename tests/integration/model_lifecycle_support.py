"""Bundles for the model lifecycle tests, derived from the session's trained bundle.

* :func:`derive_bundle` copies a bundle under a new version (re-manifested), optionally with
  its output layer perturbed by seeded Gaussian noise: a second, *different* model (it
  agrees with the original on part of the products only) without a second training run.
* :func:`corrupt_bundle` makes the broken bundles a worker must refuse.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from workers.inference.bundle import MODEL_FILE, write_manifest

OUTPUT_WEIGHTS_SUFFIX = ".kernel"  # a member's softmax layer [2*dim, leaves]


def derive_bundle(src: Path, dst: Path, version: str, *, noise: float = 0.0, seed: int = 1) -> Path:
    """A copy of ``src`` as ``version``; with ``noise`` > 0 the output layer's weights get
    ``noise`` x their standard deviation of seeded Gaussian noise."""
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst)
    for p in dst.rglob("*"):
        if p.is_file():
            p.chmod(0o644)
    meta_path = dst / "metadata.json"
    meta = json.loads(meta_path.read_text())
    meta["version"] = version
    if noise > 0:
        import onnx
        from onnx import numpy_helper

        model = onnx.load(str(dst / MODEL_FILE))
        weights = next(i for i in model.graph.initializer if i.name.endswith(OUTPUT_WEIGHTS_SUFFIX))
        w = numpy_helper.to_array(weights)
        rng = np.random.default_rng(seed)
        perturbed = w + rng.normal(0.0, noise * float(w.std()), size=w.shape).astype(w.dtype)
        weights.CopyFrom(numpy_helper.from_array(perturbed, weights.name))
        onnx.save(model, str(dst / MODEL_FILE))
        meta["derived"] = {"from": str(src.name), "output_noise": noise, "seed": seed}
        meta["evaluation"] = None  # the source's figures do not describe this model
    meta_path.write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
    write_manifest(dst)
    return dst


def corrupt_bundle(src: Path, dst: Path, version: str, how: str) -> Path:
    """A broken copy of ``src``: ``bad-sha256`` (a file changed after its manifest was
    written), ``truncated-onnx`` (half an ONNX file, manifest rewritten to match) or
    ``unsupported-featurizer`` (featurizer version 99, manifest rewritten)."""
    derive_bundle(src, dst, version)
    if how == "bad-sha256":
        with (dst / MODEL_FILE).open("r+b") as fh:
            fh.seek(4096)
            byte = fh.read(1)
            fh.seek(4096)
            fh.write(bytes([byte[0] ^ 0xFF]))
    elif how == "truncated-onnx":
        model = dst / MODEL_FILE
        data = model.read_bytes()
        model.write_bytes(data[: len(data) // 2])
        write_manifest(dst)
    elif how == "unsupported-featurizer":
        meta_path = dst / "metadata.json"
        meta = json.loads(meta_path.read_text())
        meta["featurizer"]["version"] = 99
        meta_path.write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
        write_manifest(dst)
    else:
        raise ValueError(how)
    return dst
