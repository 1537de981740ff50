"""Deduplication and the grouped, hash-seeded train/val/test split."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from export.data.catalog import Example
from export.data.datasets import load_dataset
from export.data.splits import Split, bucket, deduplicate, group_key, grouped_split

REPO = Path(__file__).resolve().parents[4]


def ex(title: str, path: tuple[str, ...] = ("A",), brand: str = "", pid: str = "") -> Example:
    return Example(product_id=pid or title, title=title, brand=brand, path=path, source="t")


def synthetic(n: int = 3000) -> list[Example]:
    rng = random.Random(7)
    words = ["red", "blue", "tea", "mug", "shoe", "lamp", "soap", "pack", "xl", "cotton"]
    rows = []
    for i in range(n):
        title = " ".join(rng.choice(words) for _ in range(3)) + f" {i % 900}"
        rows.append(ex(title, (f"c{i % 17}",), pid=str(i)))
    return rows


def assert_grouped(examples: list[Example], split: Split) -> None:
    parts = [split.train, split.val, split.test]
    indices = sorted(i for part in parts for i in part)
    assert indices == list(range(len(examples)))
    keys = [{group_key(examples[i].title) for i in part} for part in parts]
    assert not keys[0] & keys[1]
    assert not keys[0] & keys[2]
    assert not keys[1] & keys[2]


def test_deduplicate_counts_exact_near_and_conflicting() -> None:
    rows = [
        ex("Green Tea 100g", ("Food", "Tea"), brand="Lipton", pid="r0"),
        ex("green  tea 100G", ("Food", "Tea"), brand="LIPTON", pid="r1"),  # exact duplicate
        ex("Green-Tea 100g!", ("Food", "Tea"), brand="Lipton", pid="r2"),  # same group
        ex("Green Tea 100g", ("Food", "Coffee"), brand="Lipton", pid="r3"),  # conflicting label
        ex("Green Tea 100g", ("Food", "Tea"), brand="Other", pid="r4"),  # other brand: kept
        ex("Mug", ("Home",), pid="r5"),
    ]
    kept, report = deduplicate(rows)
    assert [r.product_id for r in kept] == ["r0", "r2", "r3", "r4", "r5"]
    assert report.rows_in == 6
    assert report.rows_out == 5
    assert report.exact_duplicates == 1
    assert report.groups == 2
    assert report.near_duplicate_rows == 4
    assert report.conflicting_groups == 1
    assert report.conflicting_rows == 4
    assert report.as_dict()["exact_duplicates"] == 1
    assert "1 exact duplicates removed" in report.summary()


def test_group_key_falls_back_for_titles_without_letters() -> None:
    assert group_key("Green-Tea, 100g") == group_key("green tea 100 G")
    assert group_key("!!!")


def test_bucket_is_stable_and_uniform_enough() -> None:
    assert bucket(0, "abc") == bucket(0, "abc")
    assert bucket(0, "abc") != bucket(1, "abc")
    values = [bucket(3, str(i)) for i in range(5000)]
    assert all(0.0 <= v < 1.0 for v in values)
    assert 0.18 < sum(v < 0.2 for v in values) / len(values) < 0.22


def test_split_is_grouped_deterministic_and_order_independent() -> None:
    rows = synthetic()
    split = grouped_split(rows, seed=0)
    assert_grouped(rows, split)
    assert grouped_split(rows, seed=0) == split
    assert grouped_split(rows, seed=1) != split
    shuffled = rows[:]
    random.Random(1).shuffle(shuffled)
    again = grouped_split(shuffled, seed=0)
    test_ids = {rows[i].product_id for i in split.test}
    assert {shuffled[i].product_id for i in again.test} == test_ids


def test_unseen_labels_are_counted() -> None:
    rows = synthetic(600) + [ex(f"rare item {i}", ("rare", str(i))) for i in range(40)]
    split = grouped_split(rows, seed=0)
    trained = {rows[i].path for i in split.train}
    unseen = [rows[i].path for i in split.test if rows[i].path not in trained]
    assert split.unseen_test_rows == len(unseen) > 0
    assert split.unseen_test_labels == len(set(unseen))
    assert split.unseen_val_rows == sum(rows[i].path not in trained for i in split.val)


@pytest.mark.parametrize(("test_frac", "val_frac"), [(1.0, 0.0), (0.5, 0.5), (-0.1, 0.1)])
def test_bad_fractions_raise(test_frac: float, val_frac: float) -> None:
    with pytest.raises(ValueError, match="test_frac"):
        grouped_split([], test_frac=test_frac, val_frac=val_frac)


def test_describe_is_plain_json() -> None:
    split = grouped_split(synthetic(200), seed=5, test_frac=0.25, val_frac=0.05)
    described = json.loads(json.dumps(split.describe()))
    assert described["seed"] == 5
    assert described["group_key"] == "title_key"
    assert described["test_frac"] == 0.25
    assert sum(described["rows"].values()) == 200
    assert set(described["groups"]) == {"train", "val", "test"}


_SCRIPT = """
import hashlib, json, random
from export.data.catalog import Example
from export.data.splits import grouped_split
rng = random.Random(3)
rows = [Example(product_id=str(i), title=f"item {rng.randrange(400)} {'xyz'[i % 3]}",
                path=("A",), source="t") for i in range(2000)]
s = grouped_split(rows, seed=11)
print(hashlib.sha256(json.dumps([s.train, s.val, s.test]).encode()).hexdigest())
"""


def test_split_does_not_depend_on_pythonhashseed() -> None:
    digests = set()
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        result = subprocess.run(
            [sys.executable, "-c", _SCRIPT],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            cwd=REPO,
        )
        digests.add(result.stdout.strip())
    assert len(digests) == 1


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.sampled_from(["a b", "A-B", "c", "C!", "d e f", "x", "y 1", "Y1"]), max_size=60),
    st.integers(min_value=0, max_value=2**31),
)
def test_split_never_straddles_groups(titles: list[str], seed: int) -> None:
    rows = [ex(t, pid=str(i)) for i, t in enumerate(titles)]
    assert_grouped(rows, grouped_split(rows, seed=seed, test_frac=0.3, val_frac=0.3))


def test_bigbasket_split_is_grouped_with_roughly_the_asked_fractions(data_dir: Path) -> None:
    examples, _ = load_dataset("bigbasket", data_dir)
    examples, report = deduplicate(examples)
    assert report.exact_duplicates > 1_000
    assert report.conflicting_groups > 0
    split = grouped_split(examples, seed=0)
    assert_grouped(examples, split)
    n = len(examples)
    assert abs(len(split.test) / n - 0.2) < 0.02
    assert abs(len(split.val) / n - 0.1) < 0.02
    assert split.unseen_test_rows < 0.01 * len(split.test)
    assert grouped_split(examples, seed=0) == split
