"""Standard taxonomies end to end, against the real Kafka and Redis with the session's
trained bundle and real bigbasket products.

``prodcat taxonomy align`` maps the bundle's categories to Shopify from its own training
rows, ``apply`` attaches the CSV; the mapped bundle is published live and a classify worker
emits ``standard_category`` and ``google_product_category`` for every product, exactly as
the mapping says for the category it chose. Then a reviewer changes one category's row,
``apply`` makes a new version, it is published, the worker hot-swaps, and the products of
that category come out with the reviewer's node. ``prodcat predict --google-feed`` writes
the Merchant Center column for the same products.
"""

from __future__ import annotations

import argparse
import csv
import io
import shutil
from collections import Counter
from pathlib import Path

import pytest

from export.data.catalog import Example
from export.standard.cli import register
from tests.integration.classify_support import (
    Setup,
    WorkerThread,
    categorized,
    produce_events,
    product_events,
    read_all,
    running_worker,
    text_of,
    wait_for,
)
from workers.cli.common import add_connection_flags
from workers.core.events import CategorizedEvent
from workers.inference.bundle import load_bundle
from workers.inference.model import Classifier
from workers.inference.predict import MerchantFeed
from workers.inference.standard import StandardTable
from workers.lifecycle.admin import ModelAdmin

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROWS = 400
REVIEWED_ID = "gid://shopify/TaxonomyCategory/fb-2-13"  # Nuts & Seeds: the reviewer's pick


def taxonomy_command(setup: Setup, data_dir: Path, *argv: str) -> int:
    """``prodcat taxonomy ...`` through its own flag declarations (in this process)."""
    parser = argparse.ArgumentParser(prog="prodcat")
    register(parser.add_subparsers(dest="command", required=True), add_connection_flags)
    args = parser.parse_args(["taxonomy", *argv])
    result: int = args.handler(args, setup.settings().with_overrides(data_dir=data_dir))
    return result


def outputs(
    setup: Setup, rows: list[Example], tag: str, expect_version: str
) -> list[CategorizedEvent]:
    events = product_events(rows, tag)
    produce_events(setup.bootstrap, setup.topics["product_created"], events)
    wanted = {e.event_id for e in events}

    def mine() -> list[CategorizedEvent]:
        read = categorized(read_all(setup.bootstrap, setup.topics["categorized"], settle_s=0.5))
        return [e for e in read if e.causation_id in wanted]

    wait_for(lambda: len(mine()) >= len(events), 90, f"{len(events)} {tag} outputs")
    got = mine()
    assert {e.model_version for e in got} == {expect_version}
    return got


def assert_as_mapped(events: list[CategorizedEvent], table: StandardTable) -> None:
    for e in events:
        standard, google = table.values(e.category_path)
        assert e.standard_category == standard, e.category_path
        assert e.google_product_category == google, e.category_path


def test_a_mapped_bundle_emits_standard_categories_and_a_reviewed_edit_swaps_in(
    setup: Setup,
    classify_bundle: Path,
    catalog_rows: list[Example],
    data_dir: Path,
    tmp_path: Path,
) -> None:
    setup.extra["model"] = {"bundle": None, "store": str(tmp_path / "store")}
    bundle = shutil.copytree(classify_bundle, tmp_path / "bundle")
    sheet = tmp_path / "mapping.csv"
    taxonomies = data_dir / "taxonomies"
    common = ["--taxonomies", str(taxonomies)]
    align = ["align", "--bundle", str(bundle), "--out", str(sheet), *common]
    assert taxonomy_command(setup, data_dir, *align) == 0
    assert (
        taxonomy_command(setup, data_dir, "apply", str(sheet), "--bundle", str(bundle), *common)
        == 0
    )
    first = load_bundle(bundle)
    assert first.standard is not None and first.metadata.standard is not None
    assert first.metadata.standard.base_version == load_bundle(classify_bundle).version

    admin = ModelAdmin(setup.settings(), actor="taxonomy-test")
    admin.publish(bundle, live=True)
    rows = catalog_rows[:ROWS]
    with running_worker(setup.settings()) as w:
        before = outputs(setup, rows, "mapped", first.version)
        table = StandardTable(first.taxonomy, first.standard)
        assert_as_mapped(before, table)
        mapped = [e for e in before if e.google_product_category is not None]
        assert len(mapped) >= ROWS // 2, "most products get a Google category"
        assert {e.standard_category.taxonomy for e in mapped if e.standard_category} == {"shopify"}

        # A reviewer moves the most frequent category elsewhere; apply makes a new version.
        counts = Counter(tuple(e.category_path) for e in before)
        target = next(p for p, _ in counts.most_common() if table.values(p)[0] is not None)
        target_standard = table.values(target)[0]
        assert target_standard is not None and target_standard.id != REVIEWED_ID
        edited = edit_row(sheet, " > ".join(target), REVIEWED_ID)
        apply = ["apply", str(edited), "--bundle", str(bundle), *common]
        assert taxonomy_command(setup, data_dir, *apply) == 0
        second = load_bundle(bundle)
        assert second.version != first.version
        assert second.metadata.standard is not None and second.metadata.standard.reviewed == 1
        admin.publish(bundle, live=True, force=True)
        wait_for(lambda: serving(w) == second.version, 30, "the worker to swap to the edit")
        after = outputs(setup, rows, "edited", second.version)

    moved = [e for e in after if tuple(e.category_path) == target]
    assert moved, "the edited category is still predicted"
    for e in moved:
        assert e.standard_category is not None
        assert (e.standard_category.id, e.standard_category.match) == (REVIEWED_ID, "reviewed")
        assert e.google_product_category is not None
        assert e.google_product_category.path[-1] == "Nuts & Seeds"
    assert_as_mapped(after, StandardTable(second.taxonomy, second.standard))

    # The same products as a Merchant Center column.
    classifier = Classifier(second)
    out = io.StringIO()
    feed = MerchantFeed(out)
    for row, decision in zip(rows, classifier.classify([text_of(r) for r in rows]), strict=True):
        feed.write(row.product_id, decision, classifier)
    lines = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert len(lines) == ROWS and feed.rows == ROWS
    assert sum(1 for line in lines if line["google_product_category"].isdigit()) >= ROWS // 2
    assert feed.without_category == sum(1 for line in lines if not line["google_product_category"])


def serving(w: WorkerThread) -> str:
    assert w.worker.pipeline is not None
    return w.worker.pipeline.version


def edit_row(sheet: Path, category: str, new_id: str) -> Path:
    """The reviewed copy of ``sheet``: ``category``'s row points at ``new_id`` (path emptied,
    as a reviewer who only pastes an id would leave it)."""
    with sheet.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        fields = list(reader.fieldnames or [])
        rows = list(reader)
    hits = [r for r in rows if r["category_path"] == category]
    assert len(hits) == 1
    hits[0]["shopify_id"], hits[0]["shopify_path"] = new_id, ""
    edited = sheet.with_name("mapping.reviewed.csv")
    with edited.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return edited
