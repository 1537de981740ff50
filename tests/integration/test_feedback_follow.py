"""The feedback app follows the live model: after a promotion that brings a new category,
moderators can file products under it without restarting the app."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis

from export.data.catalog import Example
from tests.integration.classify_support import read_all, wait_for
from tests.integration.feedback_support import (
    TIMEOUT_S,
    feedback,
    leaves,
    prediction,
    product_event,
    read_override,
    running_app,
    send,
)
from tests.integration.model_lifecycle_support import derive_bundle
from workers.inference.bundle import load_bundle, write_manifest
from workers.kafka.deadletter import DLQ_ERROR_CLASS
from workers.lifecycle.admin import ModelAdmin


def _with_new_category(src: Path, dst: Path, version: str) -> tuple[Path, tuple[str, ...]]:
    """A copy of ``src`` whose last leaf is renamed: a category the original lacks."""
    derive_bundle(src, dst, version)
    meta_path = dst / "metadata.json"
    meta = json.loads(meta_path.read_text())
    old = meta["labels"][-1]
    new = [*old[:-1], f"{old[-1]} (new in {version})"]
    meta["labels"][-1] = new
    meta_path.write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
    write_manifest(dst)
    return dst, tuple(new)


def test_a_promotion_with_a_new_category_needs_no_restart(
    make_setup: Any,
    catalog_rows: list[Example],
    classify_bundle: Path,
    redis_client: redis.Redis,
    tmp_path: Path,
) -> None:
    s = make_setup(new_categories=False)  # a category the live model lacks is an error
    s.extra["model"] = {"bundle": None, "store": str(tmp_path / "store")}
    settings = s.settings()
    a = load_bundle(classify_bundle).version
    b_dir, new_path = _with_new_category(classify_bundle, tmp_path / f"{a}-new", f"{a}-new")
    assert new_path not in leaves(classify_bundle)
    admin = ModelAdmin(settings, actor="follow-test")
    admin.publish(classify_bundle, live=True)
    admin.publish(b_dir)
    first, second = catalog_rows[2], catalog_rows[3]
    shown = leaves(classify_bundle)[0]
    now = datetime.now(UTC)
    with running_app(settings) as fb:
        assert fb.app.model is not None and fb.app.model.version == a
        for i, row in enumerate((first, second)):
            send(s.bootstrap, s.topics["product_created"], [product_event(row, f"c-{i}")])
            send(
                s.bootstrap,
                s.topics["categorized"],
                [prediction(row.product_id, shown, a, now)],
            )
        wait_for(
            lambda: (
                fb.metric("prodcat_feedback_consumed_total", topic=s.topics["categorized"]) >= 2
            ),
            TIMEOUT_S,
            "both products and predictions to be seen",
        )
        # before the promotion the new category is unknown: dead-lettered
        send(s.bootstrap, s.topics["feedback"], [feedback(first.product_id, "moderator", new_path)])
        letters = read_all(s.bootstrap, s.topics["dead_letter"], expect=1)
        assert [dict(m.headers())[DLQ_ERROR_CLASS] for m in letters] == [b"UnknownCategoryError"]

        admin.promote(f"{a}-new", force=True)
        wait_for(
            lambda: fb.app.model is not None and fb.app.model.version == f"{a}-new",
            TIMEOUT_S,
            "the app to follow the promotion",
        )
        send(
            s.bootstrap, s.topics["feedback"], [feedback(second.product_id, "moderator", new_path)]
        )
        wait_for(
            lambda: read_override(redis_client, s.prefix, second.product_id) == new_path,
            TIMEOUT_S,
            "the correction to the new category to become an override",
        )
        assert fb.app.running
    assert len(read_all(s.bootstrap, s.topics["dead_letter"], settle_s=0.5)) == 1
