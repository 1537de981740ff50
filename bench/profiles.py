"""Inclusive and self shares per function of a py-spy ``--format raw`` profile, per thread kind.

python bench/profile_tree.py bench/results/profile_b.txt [--top 40]
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("raw", type=Path)
    ap.add_argument("--top", type=int, default=40)
    args = ap.parse_args()
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in args.raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        total += n
        frames = [f.split(" (")[0] for f in stack.split(";")]
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
