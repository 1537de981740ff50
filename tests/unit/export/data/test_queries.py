"""export/data/queries.py: pseudo-queries from real catalog titles."""

from __future__ import annotations

import json
import random
import re
from dataclasses import replace
from pathlib import Path

import pytest

from export.data.catalog import Example
from export.data.datasets import load_dataset
from export.data.queries import QueryMaker, _typo, is_chinese, main


@pytest.fixture(scope="module")
def rows(data_dir: Path) -> list[Example]:
    english, _ = load_dataset("bigbasket", data_dir, limit=3000)
    chinese, _ = load_dataset("cn_ecommerce_products", data_dir, limit=3000)
    return english + chinese


def test_queries_are_short_spans_of_the_title_without_the_brand(rows: list[Example]) -> None:
    maker = QueryMaker(rows, seed=1)
    english = [e for e in rows if not is_chinese(e.title) and e.brand][:500]
    made = 0
    for e in english:
        branded = replace(e, title=f"{e.brand} {e.title}")  # the brand inside the title too
        title_words = set(re.findall(r"[^\W_]+", e.title.lower()))
        brand_only = set(re.findall(r"[^\W_]+", e.brand.lower())) - title_words
        for q in maker.queries(branded, 3):
            words = q.lower().split()
            assert 1 <= len(words) <= 4
            assert not set(words) & brand_only, (q, e.brand)
            made += 1
    assert made > 1000


def test_chinese_queries_are_whole_words_of_the_title(rows: list[Example]) -> None:
    maker = QueryMaker(rows, seed=1)
    chinese = [e for e in rows if is_chinese(e.title)]
    assert chinese
    for e in chinese[:300]:
        for q in maker.queries(e, 3):
            assert 1 <= len(q) <= 8
            assert all(not ch.isascii() for ch in q)
            # a span of the title, or one character less (the noise)
            assert q in e.title or len(q) >= 2


def test_type_words_are_drawn_more_often_than_colours(rows: list[Example]) -> None:
    """Purity follows the data: in the Chinese running-shoe rows, the type word 跑步鞋
    comes out more often than a colour like 黑色."""
    maker = QueryMaker(rows, seed=3)
    shoes = [e for e in rows if e.path[-1] == "跑步鞋"][:200]
    assert shoes
    made = [q for e in shoes for q in maker.queries(e, 3)]
    assert sum("跑步" in q or "跑鞋" in q for q in made) > sum("黑色" in q for q in made)


def test_typos_keep_the_first_letter_and_change_one_thing() -> None:
    rng = random.Random(0)
    for _ in range(200):
        typo = _typo("basmati", rng)
        assert typo[0] == "b" and abs(len(typo) - 7) <= 1


def test_the_command_splits_products_before_making_queries(data_dir: Path, tmp_path: Path) -> None:
    main(["--data", "bigbasket", "--data-dir", str(data_dir), "--out", str(tmp_path),
          "--limit", "2000", "--per-product", "2"])  # fmt: skip
    train = [json.loads(line) for line in (tmp_path / "train.jsonl").open()]
    test = [json.loads(line) for line in (tmp_path / "test.jsonl").open()]
    assert train and test
    train_products = {r["product_id"].split("#")[0] for r in train}
    test_products = {r["product_id"].split("#")[0] for r in test}
    assert not train_products & test_products
    assert set(json.loads((tmp_path / "products-test.json").read_text())) >= test_products
    assert all(r["title"] and r["category_path"] for r in train)


def test_sample_draws_products_from_the_whole_file(data_dir: Path, tmp_path: Path) -> None:
    """``--sample`` is a seeded sample of the whole catalog, not its first rows (the Chinese
    catalog's file is sorted by category, so its first rows are one or two top levels)."""
    first, sampled = tmp_path / "first", tmp_path / "sampled"
    main(["--data", "bigbasket", "--data-dir", str(data_dir), "--out", str(first),
          "--limit", "500", "--per-product", "1"])  # fmt: skip
    main(["--data", "bigbasket", "--data-dir", str(data_dir), "--out", str(sampled),
          "--sample", "500", "--per-product", "1"])  # fmt: skip

    def products(folder: Path) -> set[str]:
        rows = [
            json.loads(line)
            for name in ("train", "test")
            for line in (folder / f"{name}.jsonl").open()
        ]
        return {r["product_id"].split("#")[0] for r in rows}

    head, drawn = products(first), products(sampled)
    assert 400 <= len(drawn) <= 500
    assert len(drawn - head) > len(drawn) / 2
