"""A bundle's standard taxonomy mapping, as serving reads it: the per-category event fields
(leaf answers and back-offs alike), null for what is unmatched, and the file's checks."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import numpy as np
import pytest

from tests.unit.payloads import mapping_for
from workers.core.errors import BundleError
from workers.inference.standard import (
    NULL_FIELDS,
    StandardTable,
    decode_standard,
    encode_standard,
    require_consistent,
)
from workers.inference.taxonomy import Taxonomy, Thresholds

TAXONOMY = Taxonomy.from_unsorted(
    [("Food", "Tea", "Green"), ("Food", "Tea", "Black"), ("Food", "Coffee"), ("Home",)]
)


def test_fields_follow_the_answer_leaf_or_node() -> None:
    mapping = mapping_for(TAXONOMY, skip=0)
    table = StandardTable(TAXONOMY, mapping)
    scores = np.array(
        [
            [0.9, 0.05, 0.03, 0.02],  # a confident leaf
            [0.3, 0.3, 0.2, 0.2],  # backs off to Food > Tea
        ],
        dtype=np.float32,
    )
    decided = TAXONOMY.decide(scores, Thresholds(leaf=0.5, by_depth={1: 0.5, 2: 0.55}), 2)
    assert decided.node.tolist()[0] == -1 and decided.node.tolist()[1] >= 0
    fields = table.fields_of(decided)
    for item, path in zip(fields, decided.answer_path.tolist(), strict=True):
        assert item == table.fields_for(path)
        doc = json.loads(b"{" + item + b"}")
        standard, google = table.values(path)
        assert doc["standard_category"] == msgspec.to_builtins(standard)
        assert doc["google_product_category"] == msgspec.to_builtins(google)


def test_match_levels_and_unmatched_categories() -> None:
    mapping = mapping_for(TAXONOMY, skip=0)
    table = StandardTable(TAXONOMY, mapping)
    for entry in mapping.categories:
        standard, google = table.values(entry.category_path)
        if entry.id is None:
            assert (standard, google) == (None, None)
            assert table.fields_for(entry.category_path) == NULL_FIELDS
            continue
        assert standard is not None
        expected = "reviewed" if entry.reviewed else "auto" if entry.status == "ok" else "low"
        assert standard.match == expected and standard.id == entry.id
        assert (google is None) == (entry.google_id is None)
    assert table.values(("Not", "A Category")) == (None, None)
    summary = table.summary()
    assert summary["categories"] == len(mapping.categories)
    assert summary["matched"] == sum(1 for c in mapping.categories if c.id is not None)


def test_without_a_mapping_every_field_is_null() -> None:
    table = StandardTable(TAXONOMY, None)
    decided = TAXONOMY.decide(np.eye(4, dtype=np.float32), Thresholds(), 1)
    assert not table.active
    assert table.fields_of(decided) == [NULL_FIELDS] * 4


def test_the_file_is_checked(tmp_path: Path) -> None:
    mapping = mapping_for(TAXONOMY)
    assert decode_standard(encode_standard(mapping)) == mapping
    other = msgspec.structs.replace(mapping, format="prodcat-standard/9")
    with pytest.raises(BundleError, match="format"):
        decode_standard(encode_standard(other))
    with pytest.raises(BundleError, match=r"standard\.json"):
        decode_standard(b'{"format": "prodcat-standard/1"}')
    stranger = mapping_for(Taxonomy.from_unsorted([("Garden", "Seeds")]))
    with pytest.raises(BundleError, match="another bundle"):
        require_consistent(stranger, TAXONOMY, tmp_path / "standard.json")
