"""The ``prodcat`` command line. Subcommands are filled in by their modules."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="prodcat", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text in [
        ("classify", "run a classify worker"),
        ("feedback", "run the feedback app"),
        ("train", "train a model bundle"),
        ("export", "export a trained model to an ONNX bundle"),
        ("publish", "publish a bundle to the model store"),
        ("predict", "classify a CSV/JSONL file of products"),
        ("demo", "end-to-end demo on real data"),
    ]:
        sub.add_parser(name, help=help_text)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    print(f"prodcat {args.command}: not implemented yet", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
