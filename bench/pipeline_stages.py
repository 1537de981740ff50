"""Per-stage cost of the classify worker's batch path, in process, without Kafka or Redis.

    python -m bench.pipeline_stages --bundle DIR [--events 20000] [--batch 1000] [--repeat 3]

Real catalog rows (the same distinct rows as :mod:`bench.classify_bench`) are encoded as
``product.created`` payloads, then each stage of :class:`workers.classify.pipeline.BatchPipeline`
is timed separately over batches of ``--batch``, best of ``--repeat``, on one thread:
JSON decode, normalization (``Featurizer.prepare``), content hashes, featurization,
the onnxruntime run, taxonomy decoding, the Redis value encoding, and building plus
encoding the output events. The last line times ``BatchPipeline.run`` end to end
(no cache), which should be close to the sum. Figures are microseconds per event of
process CPU time (``time.process_time``), so other jobs on the machine matter less.
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import REPO, distinct_rows, payload
from workers.classify.batch import Outcome
from workers.classify.cache import encode_cached
from workers.classify.categorized import DecisionEncoder, EventWriter
from workers.classify.metrics import ClassifyMetrics
from workers.classify.pipeline import BatchPipeline
from workers.core.codec import Codec
from workers.core.product import ProductText
from workers.inference.model import Classifier


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.process_time()
        out = fn()
        best = min(best, time.process_time() - t0)
    return best, out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--bundle", type=Path, required=True)
    ap.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads")
    args = ap.parse_args()

    rows = distinct_rows(args.data_dir)[: args.events]
    now = datetime.now(UTC)
    payloads = [payload(e, "stages", i, now)[1] for i, e in enumerate(rows)]
    batches = [payloads[i : i + args.batch] for i in range(0, len(payloads), args.batch)]
    codec = Codec(1 << 20)
    clf = Classifier.from_path(args.bundle, intra_op_threads=args.threads)
    clf.warm_up()
    fz, tax, th = clf.featurizer, clf.bundle.taxonomy, clf.bundle.thresholds
    pipe = BatchPipeline(clf, codec, ClassifyMetrics())
    n = len(payloads)
    results: dict[str, float] = {}

    def stage(name: str, fn: Callable[[], Any]) -> Any:
        seconds, out = timed(fn, args.repeat)
        results[name] = seconds * 1e6 / n
        # keep the stage's outputs out of later stages' garbage collections, as the worker
        # does (it freezes what it loaded, and a batch's objects die with the batch)
        gc.collect()
        gc.freeze()
        return out

    events = stage(
        "JSON decode + validation", lambda: [[codec.decode_product(p) for p in b] for b in batches]
    )
    texts = stage(
        "normalize (prepare)",
        lambda: [[fz.prepare(ProductText.of(e)) for e in b] for b in events],
    )
    hashes = stage("content hashes", lambda: [[t.content_hash() for t in b] for b in texts])
    feats = stage("featurize", lambda: [fz.transform_prepared(b) for b in texts])
    session = clf._session
    names = clf._inputs
    sliced = getattr(clf, "_run", None)  # the length-sliced runs, where the Classifier has them

    def run_model() -> list[Any]:
        out = []
        for f, b in zip(feats, texts, strict=True):
            if sliced is not None:
                out.append(sliced(f, len(b)))
                continue
            feeds = {k: clf._fit_width(k, f[k]) for k in names}
            out.append(np.asarray(session.run([clf._output], feeds)[0], dtype=np.float32))
        return out

    probs = stage("onnxruntime run", run_model)
    decided = stage("taxonomy decide", lambda: [tax.decide(p, th, clf.top_k) for p in probs])
    encoder = DecisionEncoder()
    encoded = stage(
        "decision JSON (DecisionEncoder.encode_decided)",
        lambda: [encoder.encode_decided(d) for d in decided],
    )
    stage("Redis values (encode_cached)", lambda: [[encode_cached(d) for d in b] for b in encoded])

    def encode_outputs() -> None:
        for b_events, b_hashes, b_dec in zip(events, hashes, encoded, strict=True):
            writer = EventWriter(clf.version, datetime.now(UTC))
            for e, h, d in zip(b_events, b_hashes, b_dec, strict=True):
                pipe._encode(Outcome(), e, h, d, "model", writer)

    stage("output events (build + encode)", encode_outputs)
    total = sum(results.values())
    stage("BatchPipeline.run (no cache), end to end", lambda: [pipe.run(b) for b in batches])

    print(f"{n} events, batches of {args.batch}, best of {args.repeat}, CPU µs/event:\n")
    print("| stage | µs/event | share |\n|---|---:|---:|")
    for name, us in results.items():
        share = f"{100 * us / total:.0f}%" if "end to end" not in name else ""
        print(f"| {name} | {us:.2f} | {share} |")
    print(f"| sum of stages | {total:.2f} | |")
    review = sum(int(d.review.sum()) for d in decided)
    print(f"\nneeds_review: {review}/{n}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
