"""The demo's scripted corrections, sent the way a moderator's tool would send them.

Every correction is a ``category.feedback`` event (action ``correct``, source ``moderator``)
on the feedback topic. The feedback app (``prodcat feedback``) turns it into an override in
Redis; the next event of that product is then answered with it (source ``override``).

THE SWITCH: while ``prodcat feedback`` is still a stub in ``workers/cli.py``,
:func:`feedback_app_implemented` is False and :meth:`CorrectionPath.apply` also writes the
overrides to Redis itself, as the app would, and says so. Once the app has landed, delete
``_write_directly`` and the two places that call it.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import redis
from confluent_kafka import Producer

from workers.cache import override_key
from workers.events import Codec, FeedbackEvent

__all__ = ["Correction", "CorrectionPath", "feedback_app_implemented", "feedback_events"]

Spawn = Callable[[str, list[str], dict[str, str]], "subprocess.Popen[bytes]"]

STUB_NOTE = (
    "prodcat feedback is not implemented yet: the demo writes the overrides to Redis "
    "itself, as the feedback app will"
)


def feedback_app_implemented() -> bool:
    """True once ``prodcat feedback`` is a real subcommand, not ``cli._not_yet``'s stub."""
    from workers import cli

    try:
        args = cli.build_parser().parse_args(["feedback"])
    except SystemExit:  # the real app wants arguments: the stub takes none
        return True
    qualname = getattr(args.handler, "__qualname__", "")
    return not qualname.startswith(f"{cli._not_yet.__qualname__}.")


@dataclass(frozen=True, slots=True)
class Correction:
    """A moderator fixing the model's answer for one product."""

    product_id: str
    title: str
    wrong: tuple[str, ...]  # the model's answer that was shown
    right: tuple[str, ...]  # the category the moderator chose
    model_version: str


def feedback_events(corrections: Sequence[Correction], now: datetime) -> list[FeedbackEvent]:
    """The ``category.feedback`` events of ``corrections``."""
    return [
        FeedbackEvent(
            event_type="category.feedback",
            event_id=uuid.uuid4().hex,
            product_id=c.product_id,
            action="correct",
            category_path=list(c.right),
            rejected_category_path=list(c.wrong) or None,
            source="moderator",
            actor_id="demo-moderator",
            signal="edit",
            model_version=c.model_version,
            occurred_at=now,
        )
        for c in corrections
    ]


class CorrectionPath:
    """Feedback events in, overrides in Redis out: via the feedback app when it exists."""

    def __init__(
        self,
        env: Mapping[str, str],
        kafka_conf: Mapping[str, object],
        redis_url: str,
        codec: Codec,
        use_app: bool | None = None,
    ) -> None:
        self.env = dict(env)
        self.kafka_conf = dict(kafka_conf)
        self.redis_url = redis_url
        self.codec = codec
        self.use_app = feedback_app_implemented() if use_app is None else use_app
        self.app: subprocess.Popen[bytes] | None = None
        self.notes: list[str] = []
        self.how = "feedback app" if self.use_app else "written directly to Redis"

    def start(self, spawn: Spawn) -> None:
        """Start ``prodcat feedback`` (when implemented) so it is up before corrections."""
        if self.use_app:
            self.app = spawn(
                "feedback", [sys.executable, "-m", "workers.cli", "feedback"], self.env
            )
        else:
            self.notes.append(STUB_NOTE)

    def apply(self, corrections: Sequence[Correction], timeout_s: float = 60.0) -> None:
        """Send the feedback events, then make sure every override is in Redis."""
        producer = Producer({**self.kafka_conf, "linger.ms": 5})
        topic = self.env["PRODCAT_TOPICS_FEEDBACK"]
        for event in feedback_events(corrections, datetime.now(UTC)):
            producer.produce(topic, self.codec.encode(event), event.product_id)
        producer.flush(10)
        client = redis.Redis.from_url(self.redis_url)
        prefix = self.env["PRODCAT_REDIS_KEY_PREFIX"]
        keys = [override_key(prefix, c.product_id) for c in corrections]
        try:
            if not self.use_app:
                _write_directly(client, keys, corrections)
                return
            deadline = time.monotonic() + timeout_s
            while client.exists(*keys) < len(keys):
                if time.monotonic() > deadline or (self.app and self.app.poll() is not None):
                    self.notes.append(
                        "the feedback app did not write the overrides in time: "
                        "the demo wrote them to Redis itself"
                    )
                    self.how = "written directly to Redis (feedback app too slow)"
                    _write_directly(client, keys, corrections)
                    return
                time.sleep(0.2)
        finally:
            client.close()

    def stop(self, timeout_s: float = 30.0) -> int | None:
        """SIGTERM the feedback app and wait for it; its return code (None if not run)."""
        if self.app is None:
            return None
        if self.app.poll() is None:
            self.app.send_signal(signal.SIGTERM)
        try:
            rc = self.app.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.app.kill()
            rc = self.app.wait()
        state_dir = self.env.get("PRODCAT_FEEDBACK_STATE_DIR")
        if state_dir:
            with contextlib.suppress(OSError):
                shutil.rmtree(Path(state_dir))
        return rc


def _write_directly(
    client: redis.Redis, keys: Sequence[str], corrections: Sequence[Correction]
) -> None:
    """FALLBACK while the feedback app is missing: the override value the app writes."""
    for key, c in zip(keys, corrections, strict=True):
        value = {"category_path": list(c.right), "source": "moderator"}
        client.set(key, msgspec.json.encode(value))
