"""The reviewable CSV and attaching it to a bundle: the automatic answers round-trip, a
reviewer's edits win, mistakes are named by line, and the bundle gets the mapping, a new
version and a new manifest."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from export.errors import DataError
from export.standard.align import Aligner, Alignment
from export.standard.attach import attach, build_mapping
from export.standard.sheet import COLUMNS, FIRST_COLUMNS, read_sheet, write_sheet
from export.standard.trees import StandardTree
from workers.inference.bundle import load_bundle, verify_manifest, write_manifest
from workers.inference.spec import FeaturizerSpec
from workers.inference.taxonomy import Taxonomy

LEAVES = [
    ("Apparel", "Shoes", "Sneakers"),
    ("Apparel", "Shoes", "Sandals"),
    ("Kitchen", "Appliances", "Electric Kettles"),
    ("Qzxv", "Wqpz"),
]
TAXONOMY = Taxonomy.from_unsorted(LEAVES)
CATEGORIES = len({*TAXONOMY.leaves, *TAXONOMY.node_paths})  # ("Qzxv", "Wqpz") is both


def bundle_dir(root: Path, version: str = "shoes-1") -> Path:
    """A bundle-shaped directory with :data:`LEAVES` as labels (the model is not run)."""
    root.mkdir(parents=True)
    meta = {
        "format": "prodcat-bundle/1",
        "version": version,
        "labels": [list(p) for p in TAXONOMY.leaves],
        "featurizer": FeaturizerSpec().to_dict(),
        "thresholds": {"leaf": 0.2, "by_depth": {"1": 0.3}},
        "created_at": datetime(2026, 12, 1, tzinfo=UTC).isoformat(),
    }
    (root / "metadata.json").write_text(json.dumps(meta))
    (root / "model.onnx").write_bytes(b"onnx bytes")
    write_manifest(root)
    return root


@pytest.fixture(scope="module")
def alignments(shopify: StandardTree) -> list[Alignment]:
    return Aligner(shopify).align({leaf: [] for leaf in LEAVES})


def sheet_text(
    alignments: Sequence[Alignment],
    shopify: StandardTree,
    google: StandardTree,
    to_google: npt.NDArray[np.int32],
) -> str:
    out = io.StringIO()
    write_sheet(out, alignments, shopify, google, to_google.tolist())
    return out.getvalue()


def rows_of(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def write_rows(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_the_sheet_has_the_issues_first_columns_and_one_row_per_category(
    alignments: list[Alignment],
    shopify: StandardTree,
    google: StandardTree,
    to_google: npt.NDArray[np.int32],
) -> None:
    text = sheet_text(alignments, shopify, google, to_google)
    assert text.splitlines()[0].split(",")[:4] == list(FIRST_COLUMNS)
    rows = rows_of(text)
    assert [r["category_path"] for r in rows] == [" > ".join(a.path) for a in alignments]
    assert len(rows) == CATEGORIES == 9
    sneakers = next(r for r in rows if r["category_path"].endswith("Sneakers"))
    assert sneakers["shopify_id"] == "gid://shopify/TaxonomyCategory/aa-8-8"
    assert sneakers["shopify_path"] == "Apparel & Accessories > Shoes > Sneakers"
    assert sneakers["google_id"] and sneakers["google_path"].startswith("Apparel & Accessories")
    assert sneakers["auto_id"] == sneakers["shopify_id"] and sneakers["reviewed"] == ""
    nonsense = next(r for r in rows if r["category_path"] == "Qzxv")
    assert nonsense["status"] == "none" and nonsense["shopify_id"] == ""  # no silent guess


def test_unedited_rows_read_back_as_automatic(
    tmp_path: Path,
    alignments: list[Alignment],
    shopify: StandardTree,
    google: StandardTree,
    to_google: npt.NDArray[np.int32],
) -> None:
    path = tmp_path / "m.csv"
    path.write_text(sheet_text(alignments, shopify, google, to_google), encoding="utf-8")
    rows = read_sheet(path, shopify)
    assert [r.category_path for r in rows] == [a.path for a in alignments]
    assert [r.node for r in rows] == [a.node if a.matched else None for a in alignments]
    assert not any(r.reviewed for r in rows)


def test_a_reviewers_edits_win(
    tmp_path: Path,
    alignments: list[Alignment],
    shopify: StandardTree,
    google: StandardTree,
    to_google: npt.NDArray[np.int32],
) -> None:
    rows = rows_of(sheet_text(alignments, shopify, google, to_google))
    by_path = {r["category_path"]: r for r in rows}
    sandals_row = by_path["Apparel > Shoes > Sandals"]
    sandals_row["shopify_id"] = "gid://shopify/TaxonomyCategory/aa-8-1"  # the id alone
    sandals_row["shopify_path"] = ""
    kettles = by_path["Kitchen > Appliances > Electric Kettles"]
    kettles["shopify_id"] = ""  # the path alone names the node
    kettles["shopify_path"] = (
        "Home & Garden > Kitchen & Dining > Kitchen Appliances > Electric Kettles"
    )
    by_path["Apparel > Shoes"]["shopify_id"] = by_path["Apparel > Shoes"]["shopify_path"] = ""
    by_path["Apparel"]["reviewed"] = "yes"  # confirmed as it is
    read = {r.category_path: r for r in read_sheet(write_rows(tmp_path / "m.csv", rows), shopify)}
    sandals = read["Apparel", "Shoes", "Sandals"]
    assert shopify.ids[sandals.node or 0] == "aa-8-1" and sandals.reviewed
    assert shopify.ids[read["Kitchen", "Appliances", "Electric Kettles"].node or 0] == "hg-11-7-11"
    assert read["Apparel", "Shoes"].node is None and read["Apparel", "Shoes"].reviewed
    assert read["Apparel",].reviewed and read["Apparel",].node is not None
    assert not read["Apparel", "Shoes", "Sneakers"].reviewed


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"shopify_id": "gid://shopify/TaxonomyCategory/zz-99"}, "is not a category"),
        ({"shopify_path": "Apparel & Accessories > Shoes > Boots"}, "but shopify_path says"),
        ({"shopify_id": "", "shopify_path": "Nowhere > At All"}, "is not a path"),
        ({"status": "maybe"}, "status 'maybe'"),
        ({"category_path": "Apparel > Shoes"}, "appears twice"),
    ],
)
def test_mistakes_are_named_by_line(
    tmp_path: Path,
    alignments: list[Alignment],
    shopify: StandardTree,
    google: StandardTree,
    to_google: npt.NDArray[np.int32],
    edit: dict[str, str],
    message: str,
) -> None:
    rows = rows_of(sheet_text(alignments, shopify, google, to_google))
    line = next(i for i, r in enumerate(rows) if r["category_path"] == "Apparel > Shoes > Sneakers")
    rows[line].update(edit)
    with pytest.raises(DataError, match=message) as err:
        read_sheet(write_rows(tmp_path / "m.csv", rows), shopify)
    assert err.value.line == line + 2  # the header is line 1


def test_attach_makes_a_new_version_with_the_mapping_and_a_manifest(
    tmp_path: Path,
    alignments: list[Alignment],
    shopify: StandardTree,
    google: StandardTree,
    to_google: npt.NDArray[np.int32],
) -> None:
    source = bundle_dir(tmp_path / "b")
    sheet = tmp_path / "m.csv"
    sheet.write_text(sheet_text(alignments, shopify, google, to_google), encoding="utf-8")
    mapping = build_mapping(
        read_sheet(sheet, shopify), TAXONOMY, shopify, google, to_google.tolist(), sheet
    )
    copy = attach(source, mapping, out=tmp_path / "mapped")
    assert load_bundle(source).version == "shoes-1" and load_bundle(source).standard is None
    bundle = load_bundle(copy)
    assert re.fullmatch(r"shoes-1\.shopify-[0-9a-f]{8}", bundle.version)
    assert bundle.standard is not None and verify_manifest(copy)
    info = bundle.metadata.standard
    assert info is not None and info.base_version == "shoes-1"
    assert (info.taxonomy, info.version, info.google_version) == (
        "shopify", "2025-01-unstable", "2021-09-21",
    )  # fmt: skip
    assert info.categories == CATEGORIES
    assert info.matched == info.categories - 2  # "Qzxv" and "Qzxv > Wqpz" have none
    sneakers = bundle.standard.by_path()["Apparel", "Shoes", "Sneakers"]
    assert sneakers.match == "auto" and sneakers.google_id

    # an edited sheet applied again: another version of the same base
    rows = rows_of(sheet.read_text(encoding="utf-8"))
    rows[-1]["shopify_id"] = "gid://shopify/TaxonomyCategory/aa-8-1"
    rows[-1]["shopify_path"] = ""
    edited = write_rows(tmp_path / "m2.csv", rows)
    again = build_mapping(
        read_sheet(edited, shopify), TAXONOMY, shopify, google, to_google.tolist(), edited
    )
    attach(copy, again)
    second = load_bundle(copy)
    assert second.version.startswith("shoes-1.shopify-") and second.version != bundle.version
    assert second.metadata.standard is not None and second.metadata.standard.reviewed == 1


def test_a_mapping_must_cover_the_bundle_and_nothing_else(
    tmp_path: Path,
    alignments: list[Alignment],
    shopify: StandardTree,
    google: StandardTree,
    to_google: npt.NDArray[np.int32],
) -> None:
    rows = rows_of(sheet_text(alignments, shopify, google, to_google))
    short = write_rows(tmp_path / "short.csv", rows[:-1])
    with pytest.raises(DataError, match="have no row"):
        build_mapping(read_sheet(short, shopify), TAXONOMY, shopify, google, None, short)
    rows[-1]["category_path"] = "Apparel > Shoes > Boots"
    other = write_rows(
        tmp_path / "other.csv",
        [*rows, rows_of(sheet_text(alignments, shopify, google, to_google))[-1]],
    )
    with pytest.raises(DataError, match="another bundle"):
        build_mapping(read_sheet(other, shopify), TAXONOMY, shopify, google, None, other)
