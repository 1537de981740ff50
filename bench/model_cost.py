"""Serving cost of bundles side by side: onnxruntime CPU time per item on real rows.

    python -m bench.model_cost --bundle OLD --bundle NEW [--events 6000] [--batch 1000]

Each bundle featurizes the same real catalog rows (the classify benchmark's mix, a third of
them Chinese) with its own featurizer spec, then its ONNX session runs them in batches of
``--batch`` on one thread. The runs are interleaved (bundle A, bundle B, A, B, ...) so a
busy machine slows each alike, and the figure is the median over ``--rounds`` of process CPU
time per item; the ratio to the first bundle is printed beside it. Featurization is timed
the same way (it depends only on the spec).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from bench.common import REPO, distinct_rows
from workers.core.product import ProductText
from workers.inference.bundle import load_bundle
from workers.inference.model import Classifier


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--bundle", type=Path, action="append", required=True)
    ap.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--events", type=int, default=6000)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()

    items = [ProductText.of(e) for e in distinct_rows(args.data_dir)[: args.events]]
    classifiers = [Classifier(load_bundle(b)) for b in args.bundle]
    feats = []
    feat_times: list[list[float]] = [[] for _ in classifiers]
    model_times: list[list[float]] = [[] for _ in classifiers]
    for c in classifiers:
        step = args.batch
        feats.append(
            [c.featurizer.transform(items[i : i + step]) for i in range(0, len(items), step)]
        )
    for _ in range(args.rounds):
        for k, c in enumerate(classifiers):
            t0 = time.process_time()
            for i in range(0, len(items), args.batch):
                c.featurizer.transform(items[i : i + args.batch])
            feat_times[k].append((time.process_time() - t0) / len(items) * 1e6)
            t0 = time.process_time()
            for batch in feats[k]:
                c._run(batch, len(batch["word_ids"]))  # the onnxruntime run the worker makes
            model_times[k].append((time.process_time() - t0) / len(items) * 1e6)
    base = statistics.median(model_times[0])
    print(f"{len(items)} real rows, batches of {args.batch}, median of {args.rounds} rounds")
    print("| bundle | model | onnxruntime µs/item | vs first | featurize µs/item | MB |")
    print("|---|---|---:|---:|---:|---:|")
    for k, c in enumerate(classifiers):
        model = c.bundle.metadata.model.get("chosen", "?")
        size = c.bundle.model_path.stat().st_size / 2**20
        m = statistics.median(model_times[k])
        f = statistics.median(feat_times[k])
        print(f"| {c.version} | {model} | {m:.1f} | {m / base:.2f} | {f:.1f} | {size:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
