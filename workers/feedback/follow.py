"""The feedback app follows the live model: a promotion (with new categories, say) takes
effect without a restart.

Feedback is checked against the live model's taxonomy, labels are written for its leaves and
overrides carry its featurizer's content hash (:mod:`workers.feedback.live`). When the app
serves from the model store (``PRODCAT_MODEL_BUNDLE`` unset), :class:`ModelFollower` reads the
control topic ``prodcat.models`` beside the faust app and, when the ``live`` record names
another version, fetches and loads that bundle off the event loop and hands the new
:class:`LiveModel` over. A bundle that cannot be fetched or loaded is logged; the app keeps
checking against the model it has, and tries again after :data:`RETRY_S`. A pinned bundle is
never replaced.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Final

from workers.core.errors import ProdcatError
from workers.core.settings import Settings
from workers.feedback.live import LiveModel
from workers.inference.bundle import load_bundle
from workers.lifecycle.control import ControlReader
from workers.lifecycle.store import open_store

__all__ = ["ModelFollower"]

log = logging.getLogger(__name__)

POLL_S: Final = 1.0
RETRY_S: Final = 30.0


class ModelFollower:
    """Follows ``prodcat.models`` and calls ``on_model`` with each new live model."""

    def __init__(
        self,
        settings: Settings,
        current: Callable[[], str | None],
        on_model: Callable[[LiveModel], None],
        stop_event: asyncio.Event,
    ) -> None:
        self.settings = settings
        self._current = current
        self._on_model = on_model
        self._stop = stop_event
        self._failed: dict[str, float] = {}  # version -> when loading it last failed

    async def run(self) -> None:
        reader = ControlReader(self.settings, "feedback")
        try:
            try:
                await asyncio.to_thread(reader.catch_up, 15.0)
            except ProdcatError as exc:
                log.warning("cannot read the model control topic yet (%s); following it", exc)
            while not self._stop.is_set():
                await self._maybe_swap(reader)
                if self._stop.is_set():
                    break
                await asyncio.to_thread(reader.poll, POLL_S)
        finally:
            await asyncio.to_thread(reader.close)

    async def _maybe_swap(self, reader: ControlReader) -> None:
        version = reader.state.live_version
        if version is None or version == self._current():
            return
        published = reader.state.published.get(version)
        if published is None:
            return  # the live record came first; its model.published record follows
        failed_at = self._failed.get(version)
        if failed_at is not None and time.monotonic() - failed_at < RETRY_S:
            return
        try:
            model = await asyncio.to_thread(self._load, version, published.sha256)
        except (ProdcatError, OSError) as exc:
            self._failed[version] = time.monotonic()
            log.error(
                "live model %s announced but not loaded (%s); categories are still checked "
                "against %s; retrying in %.0f s",
                version,
                exc,
                self._current(),
                RETRY_S,
            )
            return
        self._failed.pop(version, None)
        self._on_model(model)

    def _load(self, version: str, sha256: str) -> LiveModel:
        path = open_store(self.settings.model.store).fetch(version)
        return LiveModel.of(load_bundle(path, expected_sha256=sha256))
