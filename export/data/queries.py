"""Search-query-like text from catalog titles: a query model on day one.

Shoppers type a few words, in lower case, often misspelled, and name a type ("toor dal",
"running shoes") more often than a product. From each labelled product this module makes a
few *pseudo-queries* with the product's category:

* English (and other space-separated scripts): the title without the brand's words, cut
  into segments at `` - ``, ``,``, ``/``, ``(``, ``+`` and the like; a span of 1-4
  consecutive words of one segment; words that are only quantities ("500", "1kg") mostly
  dropped.
* Chinese: the title's CJK runs (Latin and digit runs in a Chinese title are mostly brands
  and model codes, so they are dropped), cut into words by jieba; a character span of one
  run made of 1-3 whole words and 2-8 characters (a span cut inside a word, "帽棉衣" of
  "连帽棉衣", is not a query anyone types).
* A span is drawn with a weight that follows from the data: the square of the largest
  *category purity* of its words, ``max_c n(w, c) / (n(w) + 1)`` counted on the products
  given. Type words ("dal", "跑步鞋") are pure, colours and sizes are not, so spans that
  name a type come out more often, as in real queries.
* Noise: most queries lower-cased; some get one typo in a word of 4+ letters (a dropped,
  doubled, swapped or keyboard-neighbour letter), or, in Chinese, one dropped character.

Rows are written as JSON Lines that ``prodcat train --data FILE`` reads (``product_id``
``<product>#q<i>``, ``title`` the query, ``category_path``). The products are split
*before* queries are made (:func:`export.data.splits.grouped_split`, grouped by title), so
``test.jsonl`` holds only queries of products the training file never saw::

    python -m export.data.queries --data bigbasket,cn_ecommerce_products --out var/queries
    prodcat train --data var/queries/train.jsonl --out var/bundles
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import re
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from export.data.catalog import Example
from export.data.datasets import load_dataset
from export.data.splits import grouped_split

__all__ = ["QueryMaker", "QueryRow", "write_rows"]

_CJK: Final = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
_WORD: Final = re.compile(r"[^\W_]+(?:'[^\W_]+)?", re.UNICODE)
_SEGMENT: Final = re.compile(r"\s+-\s+|[,;/|()\[\]+]|\s&\s")
_QUANTITY: Final = re.compile(r"^\d+(?:\.\d+)?[a-z]{0,3}$|^[xX]?\d+$")
_STOP: Final = frozenset(
    ("a", "an", "and", "the", "of", "for", "with", "in", "on", "to", "by", "from", "at", "or",
     "pack", "pcs", "pc", "set", "combo", "assorted")
)  # fmt: skip
_SPAN_WORDS: Final = (1, 2, 3, 4)
_SPAN_WORD_WEIGHTS: Final = (0.35, 0.35, 0.2, 0.1)
_SPAN_CN_WORDS: Final = (1, 2, 3)
_SPAN_CN_WEIGHTS: Final = (0.4, 0.4, 0.2)
_CN_CHARS: Final = (2, 8)
_KEYBOARD: Final = {
    "q": "wa", "w": "qe", "e": "wr", "r": "et", "t": "ry", "y": "tu", "u": "yi", "i": "uo",
    "o": "ip", "p": "o", "a": "sq", "s": "ad", "d": "sf", "f": "dg", "g": "fh", "h": "gj",
    "j": "hk", "k": "jl", "l": "k", "z": "x", "x": "zc", "c": "xv", "v": "cb", "b": "vn",
    "n": "bm", "m": "n",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class QueryRow:
    """One pseudo-query with its product's category."""

    product_id: str
    query: str
    path: tuple[str, ...]

    def as_json(self) -> str:
        record = {"product_id": self.product_id, "title": self.query,
                  "category_path": list(self.path)}  # fmt: skip
        return json.dumps(record, ensure_ascii=False)


def is_chinese(text: str) -> bool:
    """More CJK characters than ASCII letters."""
    cjk = sum(len(m) for m in _CJK.findall(text))
    return cjk > sum(c.isascii() and c.isalpha() for c in text)


def _words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def _cut(run: str) -> list[str]:
    import jieba  # the train extra; it loads its dictionary on first use (about 1 s)

    jieba.setLogLevel(logging.WARNING)
    return [w for w in jieba.cut(run) if w.strip()]


def _segments(example: Example) -> list[list[str]]:
    """The title's candidate pieces as word lists (Chinese: each CJK run, cut into words)."""
    if is_chinese(example.title):
        title = example.title.replace(example.brand, " ") if example.brand else example.title
        return [_cut(run) for run in _CJK.findall(title)]
    brand = set(_words(example.brand))
    out = []
    for part in _SEGMENT.split(example.title):
        words = [w for w in _words(part) if w not in brand]
        if words:
            out.append(words)
    return out


class QueryMaker:
    """Makes pseudo-queries; token purities come from the products it is built on."""

    def __init__(self, examples: Sequence[Example], *, seed: int = 0) -> None:
        counts: defaultdict[str, Counter[tuple[str, ...]]] = defaultdict(Counter)
        for e in examples:
            seen = {t for seg in _segments(e) for t in seg}
            for token in seen:
                counts[token][e.path] += 1
        self.purity = {t: c.most_common(1)[0][1] / (sum(c.values()) + 1) for t, c in counts.items()}
        self.rng = random.Random(seed)

    def queries(self, example: Example, count: int) -> list[str]:
        """Up to ``count`` distinct pseudo-queries of ``example`` (fewer for short titles)."""
        chinese = is_chinese(example.title)
        spans = list(self._spans(_segments(example), chinese))
        if not spans:
            return []
        purity = self.purity
        weights = [0.01 + max(purity.get(t, 0.0) for t in span) ** 2 for span in spans]
        out: list[str] = []
        for _ in range(count * 4):
            if len(out) == count:
                break
            span = self.rng.choices(spans, weights)[0]
            query = self._noisy(span, chinese)
            if query and query not in out:
                out.append(query)
        return out

    def _spans(self, segments: list[list[str]], chinese: bool) -> Iterator[list[str]]:
        """Every span of every segment with the allowed lengths, repeated by the length's
        share so that a uniform choice among them follows the length weights."""
        sizes, shares = (
            (_SPAN_CN_WORDS, _SPAN_CN_WEIGHTS) if chinese else (_SPAN_WORDS, _SPAN_WORD_WEIGHTS)
        )
        low, high = _CN_CHARS
        for words in segments:
            segment = (
                words
                if chinese
                else [w for w in words if not _QUANTITY.match(w) or self.rng.random() < 0.2]
            )
            for size, share in zip(sizes, shares, strict=True):
                if len(segment) < size:
                    continue
                for start in range(len(segment) - size + 1):
                    span = segment[start : start + size]
                    if chinese:
                        if not low <= sum(map(len, span)) <= high:
                            continue
                    elif all(w in _STOP or _QUANTITY.match(w) for w in span):
                        continue
                    for _ in range(round(share * 20)):
                        yield span

    def _noisy(self, span: list[str], chinese: bool) -> str:
        rng = self.rng
        if chinese:
            chars = list("".join(span))
            if len(chars) >= 3 and rng.random() < 0.1:
                del chars[rng.randrange(len(chars))]
            return "".join(chars)
        words = list(span)
        if rng.random() < 0.2:
            long = [i for i, w in enumerate(words) if len(w) >= 4 and w.isalpha()]
            if long:
                i = rng.choice(long)
                words[i] = _typo(words[i], rng)
        query = " ".join(words)
        return query.title() if rng.random() < 0.1 else query


def _typo(word: str, rng: random.Random) -> str:
    """One edit: drop, double, swap two neighbours, or hit a keyboard neighbour."""
    i = rng.randrange(1, len(word))  # keep the first letter, as most typos do
    kind = rng.randrange(4)
    if kind == 0:
        return word[:i] + word[i + 1 :]
    if kind == 1:
        return word[:i] + word[i] + word[i:]
    if kind == 2 and i < len(word) - 1:
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    near = _KEYBOARD.get(word[i], "")
    return word[:i] + rng.choice(near) + word[i + 1 :] if near else word


def make_rows(
    examples: Sequence[Example], maker: QueryMaker, per_product: int
) -> Iterator[QueryRow]:
    for e in examples:
        for n, query in enumerate(maker.queries(e, per_product)):
            yield QueryRow(f"{e.product_id}#q{n}", query, e.path)


def write_rows(rows: Iterable[QueryRow], path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(row.as_json() + "\n")
            n += 1
    return n


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m export.data.queries",
        description="Pseudo-queries from catalog titles, split by product (train/test JSONL).",
    )
    parser.add_argument("--data", required=True, help="comma-separated registry names")
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    parser.add_argument("--out", type=Path, required=True, help="folder for train/test.jsonl")
    parser.add_argument("--per-product", type=int, default=3, help="queries per product")
    parser.add_argument("--test-frac", type=float, default=0.2, help="products held out")
    parser.add_argument("--limit", type=int, help="rows per dataset (the first ones)")
    parser.add_argument(
        "--sample", type=int, help="a seeded sample of N products per dataset (files may be "
        "sorted by category, so the first rows are not a fair sample)"
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    examples: list[Example] = []
    for name in args.data.split(","):
        rows, _ = load_dataset(name.strip(), args.data_dir, limit=args.limit)
        if args.sample is not None and args.sample < len(rows):
            rows = random.Random(args.seed).sample(rows, args.sample)
        examples += rows
    split = grouped_split(examples, test_frac=args.test_frac, val_frac=0.0, seed=args.seed)
    train = [examples[i] for i in split.train]
    test = [examples[i] for i in split.test]
    maker = QueryMaker(train, seed=args.seed)  # purities from training products only
    counts = {
        "train": write_rows(make_rows(train, maker, args.per_product), args.out / "train.jsonl"),
        "test": write_rows(make_rows(test, maker, args.per_product), args.out / "test.jsonl"),
    }
    products = {"train": len(train), "test": len(test)}
    (args.out / "products-test.json").write_text(
        json.dumps([e.product_id for e in test]), encoding="utf-8"
    )
    print(f"queries {counts} from products {products} -> {args.out}", file=sys.stderr)  # noqa: T201
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
