"""workers.lifecycle.control: the control topic's state, newest live record wins."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from workers.core.codec import Codec
from workers.core.errors import InvalidEventError
from workers.core.events import ModelLiveEvent, ModelPublishedEvent, model_version_key
from workers.lifecycle.control import ControlState
from workers.lifecycle.swap import Wanted

NOW = datetime(2026, 11, 29, 3, 0, tzinfo=UTC)


def _published(version: str, sha: str) -> ModelPublishedEvent:
    return ModelPublishedEvent(
        event_type="model.published",
        version=version,
        location=f"var/models/{version}",
        sha256=sha,
        metrics={"weighted_f1": 0.8},
        label_count=2,
        featurizer="hashed-ngrams/1",
        created_at=NOW,
    )


def _live(version: str, **extra: object) -> ModelLiveEvent:
    return ModelLiveEvent(
        event_type="model.live",
        version=version,
        reason="test",
        changed_at=NOW,
        **extra,  # type: ignore[arg-type]
    )


def test_control_state_folds_records_newest_live_wins_tombstones_retire() -> None:
    codec = Codec()
    state = ControlState()
    for event in (_published("v1", "a" * 64), _published("v2", "b" * 64)):
        state.apply(model_version_key(event.version), codec.encode(event), codec)
    state.apply(b"live", codec.encode(_live("v1")), codec)
    state.apply(b"live", codec.encode(_live("v2", canary_version="v1", canary_share=0.1)), codec)
    assert state.live_version == "v2"
    assert Wanted.from_state(state) == Wanted(
        live=("v2", "b" * 64), canary=("v1", "a" * 64), canary_share=0.1
    )
    state.apply(model_version_key("v1"), None, codec)  # retired
    assert sorted(state.published) == ["v2"]
    wanted = Wanted.from_state(state)
    assert wanted is not None and wanted.canary == ("v1", "")  # asked for, but unpublished
    with pytest.raises(InvalidEventError):
        state.apply(b"live", b'{"event_type": "model.live"}', codec)
    with pytest.raises(InvalidEventError):
        state.apply(b"other", b"{}", codec)
