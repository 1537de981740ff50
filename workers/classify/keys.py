"""Input messages whose Kafka key is not their body's ``product_id``.

The contract (``schemas/README.md``, "Keys and ordering"): product events are keyed by the
UTF-8 ``product_id``, so a product's events share a partition and are processed in order.
A message with a null key, or a key that differs from its body's ``product_id``, may sit on
another partition than the product's other events, and then nothing orders it against
them. Such a message is still **classified as usual**: the body is valid and its
``product_id`` is the product's identity (the output is keyed by it, so everything
downstream is partitioned right), while dead-lettering would withhold a category from a
valid product because of a producer's routing mistake. It is counted in
``prodcat_key_mismatch_total{kind}`` (``missing``: no key; ``differs``: another key) and
logged, at most once per :data:`LOG_INTERVAL_S` with one example and the count since the
last line, so the producer at fault can be found without flooding the log.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, Final

from prometheus_client import Counter

from workers.classify.batch import Outcome

__all__ = ["KeyCheck"]

log = logging.getLogger(__name__)

LOG_INTERVAL_S: Final = 60.0


class KeyCheck:
    """Counts and reports consumed messages whose key is not their ``product_id``."""

    def __init__(self, counter: Counter, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._missing = counter.labels("missing")
        self._differs = counter.labels("differs")
        self._clock = clock
        self._logged_at: float | None = None
        self._unlogged = 0

    def check(self, messages: Sequence[Any], outcomes: Sequence[Outcome]) -> None:
        """``messages`` (consumed, in order) against their ``outcomes`` (whose ``key`` is the
        body's ``product_id``); dead-lettered inputs have no product id to compare."""
        first: tuple[Any, Outcome] | None = None
        missing = differs = 0
        for m, o in zip(messages, outcomes, strict=True):
            expected = o.key
            if expected is None:
                continue
            key = m.key()
            if key == expected:
                continue
            if key is None:
                missing += 1
            else:
                differs += 1
            if first is None:
                first = (m, o)
        if first is None:
            return
        if missing:
            self._missing.inc(missing)
        if differs:
            self._differs.inc(differs)
        self._report(*first, missing + differs)

    def _report(self, m: Any, o: Outcome, n: int) -> None:
        now = self._clock()
        if self._logged_at is not None and now - self._logged_at < LOG_INTERVAL_S:
            self._unlogged += n
            return
        more = self._unlogged + n - 1
        self._logged_at, self._unlogged = now, 0
        key = m.key()
        product_id = (o.key or b"").decode("utf-8", "replace")
        log.warning(
            "%s[%d]@%d: message key %s is not its product_id %r%s; classified as usual, but "
            "nothing orders it against the product's other events: key product events by "
            "product_id (schemas/README.md, Keys and ordering)",
            m.topic(),
            m.partition(),
            m.offset(),
            "(none)" if key is None else repr(key.decode("utf-8", "replace")),
            product_id,
            f" (and {more} more such messages since the last report)" if more else "",
            extra={
                "topic": m.topic(),
                "partition": m.partition(),
                "offset": m.offset(),
                "product_id": product_id,
            },
        )
