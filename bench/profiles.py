"""py-spy profiles of a worker: per-thread shares, time per pipeline stage, top functions.

    python -m bench.profiles bench/results/profile_b.txt [--top 40]

:func:`summarize` reads a ``py-spy record --format raw`` profile (one line per distinct
stack and its sample count) as :mod:`bench.classify_bench` writes it with ``--profile``;
run as a module, it prints inclusive and self shares per function instead.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path


def samples(raw: Path) -> list[tuple[list[str], int]]:
    """(frames root first, samples) of each stack of a raw py-spy profile."""
    out: list[tuple[list[str], int]] = []
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack:
            out.append((stack.split(";"), int(count)))
    return out


STAGES = {
    "onnxruntime inference": "Session.run",
    "taxonomy decide (Taxonomy.decide)": "Taxonomy.decide ",
    "decision JSON (DecisionEncoder.encode_decided)": "DecisionEncoder.encode_decided ",
    "featurize (Featurizer.transform_prepared)": "Featurizer.transform_prepared ",
    "normalize once per item (Featurizer.prepare)": "Featurizer.prepare ",
    "content hashes (cache keys)": "PreparedText.content_hash",
    "JSON decode + validation": "Codec.decode_product",
    "output events (BatchPipeline._encode)": "BatchPipeline._encode",
    "Redis MGET (ResultCache.lookup)": "ResultCache.lookup",
    "Redis write-back (ResultCache.store)": "ResultCache.store",
    "produce calls (OutputSender.send)": "OutputSender.send",
    "delivery callbacks (_Run.__call__)": "_Run.__call__",
    "model chunks run by the loop thread (work stealing)": "BatchPipeline._work",
    "consume() and poll() (C calls in the loop)": "ClassifyWorker.step ",
}
SELF_STAGES = {"consume() and poll() (C calls in the loop)"}  # matched on the leaf frame only
LOOP_STAGES = {"model chunks run by the loop thread (work stealing)"}  # not the model thread


def summarize(raw: Path, top: int = 15) -> str:
    """Per-thread shares, time per stage and the top functions of a py-spy raw profile."""
    self_s: Counter[str] = Counter()
    stage: Counter[str] = Counter()
    thread: Counter[str] = Counter()
    total = 0
    for frames, n in samples(raw):
        stack = ";".join(frames)
        total += n
        self_s[frames[-1]] += n
        if "concurrent/futures/thread.py" in stack:
            thread["model thread"] += n
        elif "ModelSwitcher._follow" in stack:
            thread["model follower (control topic; mostly blocked in poll)"] += n
        else:
            thread["loop thread"] += n
        on_model_thread = "concurrent/futures/thread.py" in stack
        for name, needle in STAGES.items():
            if name in LOOP_STAGES and on_model_thread:
                continue
            if needle in (frames[-1] if name in SELF_STAGES else stack):
                stage[name] += n

    def pct(n: int) -> str:
        return f"{100 * n / max(total, 1):.1f}"

    lines = [
        f"py-spy, {total} samples of running Python threads (librdkafka's own threads "
        "are native and not sampled).",
        "",
        "| thread | share % |",
        "|---|---:|",
        *[f"| {t} | {pct(n)} |" for t, n in thread.most_common()],
        "",
        "| stage (inclusive) | share % |",
        "|---|---:|",
        *[f"| {name} | {pct(stage[name])} |" for name in STAGES],
        "",
        "| function (self) | share % |",
        "|---|---:|",
        *[f"| `{f}` | {pct(n)} |" for f, n in self_s.most_common(top)],
    ]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("raw", type=Path)
    ap.add_argument("--top", type=int, default=40)
    args = ap.parse_args()
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for stack, n in samples(args.raw):
        total += n
        frames = [f.split(" (")[0] for f in stack]
        thread = "model" if any(f == "_worker" for f in frames) else "main"
        for name in set(frames):
            inclusive[f"{thread}: {name}"] += n
        own[f"{thread}: {frames[-1]}"] += n
    print(f"{total} samples\n\ninclusive %")
    for name, n in inclusive.most_common(args.top):
        print(f"{100 * n / total:5.1f}  {name}")
    print("\nself %")
    for name, n in own.most_common(args.top):
        print(f"{100 * n / total:5.1f}  {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
