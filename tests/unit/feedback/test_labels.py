"""Labels dumped from ``category.labels`` are training rows: ``prodcat train --labels``."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from export.data.catalog import load_catalog_file
from export.training.prepare import merge_labels
from workers.core.codec import Codec
from workers.core.events import FeedbackEvent
from workers.feedback.outputs import label_event
from workers.feedback.state import OverrideState, StoredText

ATTA = ("Grocery & Gourmet Foods", "Staples", "Atta & Flours")
RICE = ("Grocery & Gourmet Foods", "Staples", "Rice & Rice Products")


def _label(product_id: str, title: str, path: tuple[str, ...], when: datetime) -> bytes:
    event = FeedbackEvent(
        event_type="category.feedback",
        event_id=f"fb-{product_id}-{when.timestamp():.0f}",
        product_id=product_id,
        action="correct",
        category_path=list(path),
        source="moderator",
        occurred_at=when,
    )
    override = OverrideState(
        category_path=path,
        source="moderator",
        trusted=True,
        at=when.timestamp(),
        feedback_event_id=event.event_id,
    )
    text = StoredText(title=title, brand="Aashirvaad", attributes={"weight": "5 kg"})
    return Codec().encode(label_event(event, override, text))


def test_a_label_dump_loads_as_catalog_rows_and_newer_labels_win(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog.csv"
    catalog.write_text(
        "product_id,title,brand,category_path,updated_at\n"
        "p1,Aashirvaad Shudh Chakki Whole Wheat Atta 5 kg,Aashirvaad,"
        "Grocery & Gourmet Foods > Staples > Rice & Rice Products,2026-01-01T00:00:00Z\n"
        "p2,India Gate Basmati Rice Classic 1 kg,India Gate,"
        "Grocery & Gourmet Foods > Staples > Rice & Rice Products,2026-06-01T00:00:00Z\n"
        "p3,Tata Sampann Toor Dal 1 kg,Tata Sampann,"
        "Grocery & Gourmet Foods > Staples > Dals & Pulses,\n",
        encoding="utf-8",
    )
    labels = tmp_path / "labels.jsonl"
    march = datetime(2026, 3, 1, tzinfo=UTC)
    lines = [
        _label("p1", "Aashirvaad Shudh Chakki Whole Wheat Atta 5 kg", ATTA, march),
        _label("p2", "India Gate Basmati Rice Classic 1 kg", ATTA, march),
        _label("p9", "Fortune Chakki Fresh Atta 10 kg", ATTA, march),
    ]
    labels.write_bytes(b"".join(line + b"\n" for line in lines))
    rows, _ = load_catalog_file(catalog)
    extra, report = load_catalog_file(labels)
    assert report.rows_read == 3
    assert extra[0].attributes == {"weight": "5 kg"} and extra[0].brand == "Aashirvaad"
    merged = {e.product_id: e.path for e in merge_labels(rows, extra)}
    assert merged == {
        "p1": ATTA,  # the correction is newer than the catalog's label
        "p2": RICE,  # the catalog changed after the correction: it wins
        "p3": ("Grocery & Gourmet Foods", "Staples", "Dals & Pulses"),
        "p9": ATTA,  # a corrected product the export does not have: added
    }
