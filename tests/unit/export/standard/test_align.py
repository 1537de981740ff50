"""The aligner on real catalogs and the real Shopify taxonomy."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from export.data.datasets import load_dataset
from export.standard.align import STATUS_LOW, STATUS_NONE, AlignConfig, Aligner, leaf_titles
from export.standard.gold import load_gold
from export.standard.metrics import Tally
from export.standard.trees import StandardTree
from tests.unit.export.standard.test_gold import GOLD


@pytest.fixture(scope="module")
def aligner(shopify: StandardTree) -> Aligner:
    return Aligner(shopify)


def test_a_flat_english_catalog_is_aligned_as_the_sample_says(
    aligner: Aligner, shopify: StandardTree, data_dir: Path
) -> None:
    """implicitave_amazon (167 flat categories, held out from tuning): nearly every sampled
    category gets its hand-checked node, and every category gets an answer."""
    examples, _ = load_dataset("implicitave_amazon", data_dir)
    titles = leaf_titles((e.path, e.title) for e in examples)
    answers = {a.path: a for a in aligner.align(titles)}
    assert set(answers) == set(titles)
    tally = Tally()
    for row in load_gold(GOLD):
        if row.catalog == "implicitave_amazon":
            tally.add(shopify.paths["en"][answers[row.category_path].node], row.answers)
    assert tally.n >= 20
    assert tally.rates()["exact"] >= 0.9, tally.misses


def test_names_alone_give_answers_and_nonsense_gets_none(
    aligner: Aligner, shopify: StandardTree
) -> None:
    """Categories without products are matched by name (and their parents' answers); a
    name that matches nothing gets no answer, and does not steer its children."""
    answers = {
        a.path: a
        for a in aligner.align(
            {
                ("Apparel", "Shoes", "Sneakers"): [],
                ("Kitchen", "Electric Kettles"): [],
                ("Qzxv",): [],
                ("Qzxv", "Sneakers"): [],
            }
        )
    }
    assert list(answers)[:3] == [("Apparel",), ("Kitchen",), ("Qzxv",)]  # parents first
    assert shopify.ids[answers["Apparel",].node] == "aa"
    assert shopify.ids[answers["Apparel", "Shoes"].node] == "aa-8"
    assert shopify.ids[answers["Apparel", "Shoes", "Sneakers"].node] == "aa-8-8"
    assert shopify.ids[answers["Qzxv", "Sneakers"].node] == "aa-8-8"
    kettles = shopify.paths["en"][answers["Kitchen", "Electric Kettles"].node]
    assert kettles[:2] == ("Home & Garden", "Kitchen & Dining") and "Kettle" in kettles[-1]
    assert answers["Qzxv",].status == STATUS_NONE and not answers["Qzxv",].matched


def test_weak_evidence_backs_off_to_the_ancestors_answer(shopify: StandardTree) -> None:
    """A category whose own evidence is too weak takes its nearest answered ancestor's
    node, flagged low, with its own best guess first among the runner-ups; without the
    back-off it gets no answer."""
    tree = {("Apparel",): [], ("Apparel", "Qzxv"): [], ("Apparel", "Qzxv", "Wvkj"): []}
    weak = AlignConfig(min_score=0.1)  # the nonsense names score 0.04-0.08 from "Apparel"
    answers = {a.path: a for a in Aligner(shopify, weak).align(tree)}
    assert answers["Apparel",].status != STATUS_NONE
    for path in [("Apparel", "Qzxv"), ("Apparel", "Qzxv", "Wvkj")]:
        answer = answers[path]
        assert 0 < answer.score < weak.min_score
        assert shopify.ids[answer.node] == "aa" and answer.status == STATUS_LOW
        assert answer.matched and answer.node not in [c.node for c in answer.alternatives]
    strict = Aligner(shopify, replace(weak, backoff=False))
    unanswered = {a.path: a for a in strict.align(tree)}
    assert unanswered["Apparel", "Qzxv"].status == STATUS_NONE
    assert unanswered["Apparel", "Qzxv", "Wvkj"].status == STATUS_NONE


def test_a_chinese_catalog_is_matched_through_the_chinese_names(
    shopify: StandardTree, data_dir: Path
) -> None:
    examples, _ = load_dataset("cn_ecommerce_products", data_dir)
    part = ("家用电器", "厨房电器")
    titles = leaf_titles((e.path, e.title) for e in examples if e.path[:2] == part)
    aligner = Aligner(shopify, AlignConfig(max_titles=40))
    assert aligner.language(titles) == "zh"
    answers = {a.path: a for a in aligner.align(titles)}
    assert shopify.ids[answers[(*part, "豆浆机")].node] == "hg-11-7-44"  # Soy Milk Makers
    assert shopify.ids[answers[(*part, "面条机、压面机")].node] == "hg-11-7-36"  # Pasta Makers
    assert shopify.paths["en"][answers[part].node][:2] == ("Home & Garden", "Kitchen & Dining")


def test_a_category_named_like_a_node_takes_it_when_its_products_agree(
    shopify: StandardTree, data_dir: Path
) -> None:
    """bigbasket's "Sports & Energy Drinks" (mostly energy drinks, some sports drinks)
    is Shopify's node of that name, not its "Energy Drinks" child that most titles
    match; myntra's "Pendant" (jewellery) does not become the lighting node named
    "Pendants", whose votes are few under the jewellery parent: it keeps the jewellery
    node "Charms & Pendants"."""
    examples, _ = load_dataset("bigbasket", data_dir)
    drinks = ("Beverages", "Energy & Soft Drinks", "Sports & Energy Drinks")
    titles = leaf_titles((e.path, e.title) for e in examples if e.path[0] == "Beverages")
    named = {a.path: a for a in Aligner(shopify).align(titles)}
    assert shopify.path(named[drinks].node) == "Food, Beverages & Tobacco > Beverages > " + (
        "Sports & Energy Drinks"
    )
    unnamed = {a.path: a for a in Aligner(shopify, AlignConfig(named=False)).align(titles)}
    assert shopify.path(unnamed[drinks].node).endswith("Sports & Energy Drinks > Energy Drinks")

    examples, _ = load_dataset("myntra_styles", data_dir)
    titles = leaf_titles((e.path, e.title) for e in examples if e.path[0] == "Accessories")
    pendant = {a.path: a for a in Aligner(shopify).align(titles)}[
        "Accessories", "Jewellery", "Pendant"
    ]
    assert shopify.path(pendant.node) == "Apparel & Accessories > Jewelry > Charms & Pendants"
