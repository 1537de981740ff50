"""``prodcat labels dump``: the ``category.labels`` topic as a JSON Lines training file.

The labels topic is compacted and keyed by ``product_id``, so reading it from the start to
the current end gives the newest label of every corrected product (older ones may still be
there until compaction runs; the dump keeps only the newest per product, by
``label_time``). Each line is a ``category.label`` event, which ``prodcat train --labels
FILE`` reads as a catalog row (``product_id``, ``title``, ``description``, ``brand``,
``attributes``, ``category_path``, ``label_time``); newer labels win over older catalog
labels of the same product (``export.training.prepare.merge_labels``).
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import IO

from workers.core.codec import Codec
from workers.core.errors import InvalidEventError
from workers.core.events import LabelEvent
from workers.core.settings import Settings
from workers.kafka.snapshot import read_topic

__all__ = ["dump_labels", "read_labels"]

log = logging.getLogger(__name__)


def read_labels(settings: Settings, *, timeout_s: float = 30.0) -> list[LabelEvent]:
    """The newest label per product on the labels topic, up to its current end."""
    topic = settings.topics.labels
    codec = Codec(1 << 20)
    newest: dict[str, LabelEvent] = {}
    records = read_topic(
        settings.kafka,
        topic,
        "labels-dump",
        timeout_s=timeout_s,
        extra={"isolation.level": "read_committed"},
    )
    seen = False
    for record in records:
        seen = True
        if record.value is None:
            continue
        try:
            label = codec.decode(record.value, LabelEvent)
        except InvalidEventError as exc:
            log.warning(
                "skipping unreadable label at %s[%d]@%d: %s",
                topic,
                record.partition,
                record.offset,
                exc,
            )
            continue
        old = newest.get(label.product_id)
        if old is None or label.label_time >= old.label_time:
            newest[label.product_id] = label
    if not seen:
        log.warning("labels topic %s is empty or does not exist (yet): nothing to dump", topic)
    return sorted(newest.values(), key=lambda e: (e.label_time, e.product_id))


def dump_labels(
    settings: Settings,
    out: IO[bytes] | Path,
    *,
    timeout_s: float = 30.0,
    since: datetime | None = None,
) -> int:
    """Write the newest label per product (made after ``since``, when given) as JSON Lines;
    returns the number of rows."""
    labels = read_labels(settings, timeout_s=timeout_s)
    if since is not None:
        labels = [label for label in labels if label.label_time > since]
    codec = Codec(1 << 20)
    data = b"".join(codec.encode(label) + b"\n" for label in labels)
    if isinstance(out, Path):
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(data)
    else:
        out.write(data)
    return len(labels)
