"""Reading the published Shopify and Google trees and Shopify's mapping between them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from export.errors import DataError
from export.standard.trees import (
    SHOPIFY_GID,
    StandardTree,
    build_tree,
    load_google_mapping,
    load_shopify,
)


def test_shopify_tree_in_english_and_chinese(shopify: StandardTree) -> None:
    assert shopify.name == "shopify" and shopify.version == "2025-01-unstable"
    assert len(shopify) == 10_369
    assert int((shopify.parent == -1).sum()) == 25
    tshirts = shopify.node(SHOPIFY_GID + "aa-1-13-8")
    assert tshirts == shopify.node("aa-1-13-8")
    assert shopify.path(tshirts) == "Apparel & Accessories > Clothing > Clothing Tops > T-Shirts"
    assert shopify.path(tshirts, "zh") == "服饰与配饰 > 服装 > 服装上衣 > T 恤"
    chain = shopify.ancestors(tshirts)
    assert [shopify.ids[i] for i in chain] == ["aa", "aa-1", "aa-1-13", "aa-1-13-8"]
    assert int(shopify.depth[tshirts]) == 4


def test_a_node_missing_from_the_chinese_file_gets_its_parents_chinese_path(
    shopify: StandardTree,
) -> None:
    """categories.zh-CN.txt lacks a few nodes (e.g. hb-3-2-9-22): Chinese parent path, English
    name."""
    node = shopify.node("hb-3-2-9-22")
    parent = int(shopify.parent[node])
    assert shopify.paths["zh"][node][:-1] == shopify.paths["zh"][parent]
    assert shopify.paths["zh"][node][-1] == shopify.paths["en"][node][-1]
    assert shopify.paths["zh"][parent][-1] != shopify.paths["en"][parent][-1]


def test_shopify_to_google(
    shopify: StandardTree, google: StandardTree, to_google: npt.NDArray[np.int32]
) -> None:
    assert google.version == "2021-09-21" and len(google) == 5_595
    soy = shopify.node("hg-11-7-44")
    assert google.path(int(to_google[soy])) == shopify.path(soy)  # listed as it is
    phones = shopify.node("el-4-8-5")
    assert google.ids[int(to_google[phones])] == "267"
    # accented names are written in two Unicode forms by the two files: still matched
    pinatas = [i for i in range(len(shopify)) if shopify.paths["en"][i][-1] == "Piñatas"]
    assert pinatas and all(to_google[i] >= 0 for i in pinatas)
    # services have no Google category; everything else has one (a node the file does not
    # list takes its nearest listed ancestor's)
    services = [i for i in range(len(shopify)) if shopify.paths["en"][i][0] == "Services"]
    assert services and all(to_google[i] == -1 for i in services)
    assert int((to_google >= 0).sum()) > 10_300


def test_build_tree_refuses_a_broken_tree() -> None:
    with pytest.raises(ValueError, match="parent"):
        build_tree("t", "1", ["a", "b"], {"en": [("A",), ("X", "B")]})
    with pytest.raises(ValueError, match="twice"):
        build_tree("t", "1", ["a", "b"], {"en": [("A",), ("A",)]})


def test_a_malformed_line_names_the_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "categories.en.txt").write_text(
        "# Shopify Product Taxonomy - Categories: 2099-01\n\n"
        "gid://shopify/TaxonomyCategory/aa : Apparel\n"
        "Apparel > Shoes\n",
        encoding="utf-8",
    )
    with pytest.raises(DataError) as err:
        load_shopify(tmp_path)
    assert err.value.line == 4 and "categories.en.txt line 4" in str(err.value)


def test_the_google_mapping_file_must_be_there(tmp_path: Path, shopify: StandardTree) -> None:
    with pytest.raises(DataError, match="shopify_"):
        load_google_mapping(tmp_path, shopify, shopify)
