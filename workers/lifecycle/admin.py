"""``prodcat publish`` and ``prodcat models``: put bundles in the store and move the live pointer.

Publishing checks a bundle before anyone can serve it: its manifest sha256, its metadata
(format, version, labels, thresholds), a featurizer spec this prodcat supports, that
onnxruntime loads it, and that it predicts sane probabilities on a smoke sample. Then it is
copied into the model store (immutable from then on) and a ``model.published`` record goes
to the control topic. ``--live`` (or ``prodcat models promote``) also moves the ``live``
pointer, through the promotion gate (:mod:`workers.lifecycle.gate`) unless ``--force``.

Every change of the live pointer, canary or shadow is one ``model.live`` record: the
control topic states what every worker serves, so one command changes all replicas.
"""

from __future__ import annotations

import getpass
import logging
import math
import socket
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from workers.core.errors import BundleError, ConfigError, ProdcatError
from workers.core.events import ModelLiveEvent, ModelPublishedEvent, utc_now
from workers.core.product import ProductText
from workers.core.settings import Settings
from workers.inference.bundle import Bundle, load_bundle
from workers.inference.model import Classifier
from workers.lifecycle.control import ControlState, ControlWriter, read_control
from workers.lifecycle.gate import (
    GateRefusedError,
    GateResult,
    Holdout,
    judge,
    judge_corrections,
    read_holdout,
    read_recent_labels,
)
from workers.lifecycle.store import ModelStore, open_store

__all__ = ["ModelAdmin", "check_bundle", "published_event"]

log = logging.getLogger(__name__)

SMOKE_SAMPLE = (
    ProductText(title="Organic whole wheat atta flour 5 kg", brand="Aashirvaad"),
    ProductText(title="Men's cotton crew neck t-shirt, navy blue", brand="Roadster"),
    ProductText(title="Stainless steel electric kettle 1.5 L", brand="Prestige"),
    ProductText(title="无线蓝牙耳机 降噪 长续航", brand="小米"),
    ProductText(title="x"),
)
"""Used when ``publish`` gets no ``--holdout``: a smoke test, not an evaluation."""


def check_bundle(path: Path, smoke: list[ProductText] | None = None) -> Bundle:
    """Verify, load and smoke-test a bundle; raise :class:`BundleError` naming what is wrong."""
    bundle = load_bundle(path)  # sha256 manifest, typed metadata and format, featurizer spec
    classifier = Classifier(bundle, top_k=3)  # onnxruntime loads it, output width = labels
    sample = list(smoke or SMOKE_SAMPLE)[:256]
    probs = classifier.scores(sample)
    width = len(bundle.taxonomy)
    if probs.shape != (len(sample), width):
        raise BundleError(
            f"{bundle.model_path}: smoke prediction has shape {probs.shape}, "
            f"expected ({len(sample)}, {width})"
        )
    sums = probs.sum(axis=1)
    if not np.isfinite(probs).all() or not np.allclose(sums, 1.0, atol=1e-3):
        raise BundleError(
            f"{bundle.model_path}: smoke prediction is not a probability distribution "
            f"(row sums {sums.min():.4f}..{sums.max():.4f})"
        )
    if len(classifier.classify(sample)) != len(sample):
        raise BundleError(f"{bundle.model_path}: smoke classification lost items")
    return bundle


def published_event(bundle: Bundle, location: str) -> ModelPublishedEvent:
    ours = bundle.evaluation.ours if bundle.evaluation is not None else {}
    figures = {
        name: float(value)
        for name, value in ours.items()
        if isinstance(value, int | float)
        and not isinstance(value, bool)
        and name != "n"
        and math.isfinite(value)
    }
    spec = bundle.featurizer
    created = bundle.metadata.created_at
    return ModelPublishedEvent(
        event_type="model.published",
        version=bundle.version,
        location=location,
        sha256=bundle.sha256,
        metrics=figures,
        label_count=len(bundle.taxonomy),
        featurizer=f"{spec.kind}/{spec.version}",
        created_at=created if created.tzinfo else created.astimezone(),
    )


def default_actor() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"[:128]


class ModelAdmin:
    """The operations behind ``prodcat publish`` and ``prodcat models``."""

    def __init__(
        self,
        settings: Settings,
        *,
        store: ModelStore | None = None,
        actor: str | None = None,
        timeout_s: float = 15.0,
    ) -> None:
        self.settings = settings
        self.store = store if store is not None else open_store(settings.model.store)
        self.actor = actor or default_actor()
        self.timeout_s = timeout_s
        self._writer: ControlWriter | None = None

    # ------------------------------------------------------------------ reading

    def state(self) -> ControlState:
        return read_control(self.settings, self.timeout_s)

    def bundle(self, state: ControlState, version: str) -> Bundle:
        published = state.published.get(version)
        if published is None:
            raise ConfigError(
                f"version {version} is not published on {self.settings.topics.models}; "
                f"published: {', '.join(sorted(state.published)) or 'none'}"
            )
        return load_bundle(self.store.fetch(version), expected_sha256=published.sha256)

    def rows(self) -> list[dict[str, Any]]:
        """One row per published version, for ``prodcat models list``."""
        state = self.state()
        live = state.live
        out = []
        for version, event in sorted(state.published.items(), key=lambda kv: kv[1].created_at):
            roles = []
            if live is not None and live.version == version:
                roles.append("live")
            if live is not None and live.canary_version == version and live.canary_share > 0:
                roles.append(f"canary {live.canary_share:.0%}")
            if live is not None and live.shadow_version == version:
                roles.append("shadow")
            out.append(
                {
                    "version": version,
                    "role": ",".join(roles),
                    "created_at": event.created_at.isoformat(),
                    "labels": event.label_count,
                    "weighted_f1": event.metrics.get("weighted_f1"),
                    "accuracy": event.metrics.get("accuracy"),
                    "sha256": event.sha256,
                    "location": event.location,
                }
            )
        return out

    def show(self, version: str) -> dict[str, Any]:
        state = self.state()
        published = state.published.get(version)
        if published is None:
            raise ConfigError(f"version {version} is not published")
        shown: dict[str, Any] = msgspec.to_builtins(published)
        live = state.live
        shown["live"] = live is not None and live.version == version
        try:
            bundle = self.bundle(state, version)
        except ProdcatError as exc:
            shown["store"] = f"unusable: {exc}"
        else:
            shown["store"] = "verified"
            shown["evaluation"] = msgspec.to_builtins(bundle.evaluation)
            shown["data"] = msgspec.to_builtins(bundle.metadata.data)
        if live is not None and live.version == version:
            shown["live_record"] = msgspec.to_builtins(live)
        return shown

    # ------------------------------------------------------------------ changing

    def publish(
        self,
        path: Path,
        *,
        live: bool = False,
        holdout: Path | None = None,
        force: bool = False,
        tolerance: float | None = None,
    ) -> str:
        rows = read_holdout(holdout) if holdout is not None else None
        bundle = check_bundle(path, rows.items[:256] if rows is not None else None)
        state = self.state()
        gate: GateResult | None = None
        if live and state.live is not None and state.live.version != bundle.version:
            gate = self._gate(bundle, self.live_bundle(state), rows, force, tolerance)
        stored = self.store.put(bundle.root)
        existing = state.published.get(stored.version)
        if existing is None or existing.sha256 != stored.sha256:
            self._write(published_event(bundle, stored.location))
        message = f"published {stored.version} (sha256 {stored.sha256[:12]}) to {stored.location}"
        if live:
            message += "; " + self._set_live(state, stored.version, "publish", gate)
        return message

    def promote(
        self,
        version: str,
        *,
        holdout: Path | None = None,
        force: bool = False,
        tolerance: float | None = None,
    ) -> str:
        state = self.state()
        candidate = self.bundle(state, version)
        if state.live is not None and state.live.version == version:
            return f"{version} is already live"
        gate = None
        if state.live is not None:
            rows = read_holdout(holdout) if holdout is not None else None
            gate = self._gate(candidate, self.live_bundle(state), rows, force, tolerance)
        return self._set_live(state, version, "promote", gate)

    def gate(
        self,
        version: str,
        *,
        holdout: Path | None = None,
        labels: Path | None = None,
        tolerance: float | None = None,
        min_fixed: float = 0.5,
    ) -> str:
        """Both offline gates against the live version, changing nothing (``gate`` module);
        raises :class:`GateRefusedError` naming the gate that refused."""
        state = self.state()
        live = self.live_bundle(state)
        candidate = self.bundle(state, version)
        rows = read_holdout(holdout) if holdout is not None else None
        result = self._gate(candidate, live, rows, False, tolerance)
        assert result is not None  # without --force a refusal raises
        lines = [result.describe(version, live.version)]
        if labels is not None:
            recent = read_recent_labels(labels, live.metadata.created_at)
            fixed = judge_corrections(candidate, live, recent, min_share=min_fixed)
            text = fixed.describe(version, live.version)
            if not fixed.passed:
                raise GateRefusedError(f"refused: {text}")
            lines.append(text)
        return "passed: " + "; ".join(lines)

    def rollback(self, to: str | None = None) -> str:
        state = self.state()
        current = state.live
        if current is None:
            raise ConfigError("nothing is live: there is nothing to roll back")
        target = to or current.previous_version
        if target is None:
            raise ConfigError(
                f"the live record of {current.version} names no previous version; pass --to VERSION"
            )
        self.bundle(state, target)  # published, and intact in the store
        return self._set_live(state, target, f"rollback from {current.version}", None)

    def canary(self, version: str | None, share: float) -> str:
        if not 0.0 <= share <= 1.0:
            raise ConfigError(f"--share must be between 0 and 1, got {share}")
        return self._beside_live(
            "canary",
            version,
            f"canary {version} at {share:.1%}" if version else "canary off",
            canary_version=version,
            canary_share=share if version else 0.0,
        )

    def shadow(self, version: str | None) -> str:
        return self._beside_live(
            "shadow",
            version,
            f"shadow {version}" if version else "shadow off",
            shadow_version=version,
        )

    def _beside_live(self, role: str, version: str | None, reason: str, **changes: Any) -> str:
        """Set (or, with ``version`` None, stop) the canary or shadow of the live record:
        ``version`` must be published, intact in the store and not the live version."""
        state = self.state()
        current = self._require_live(state)
        if version is not None:
            self.bundle(state, version)
            if version == current.version:
                raise ConfigError(f"{version} is the live version; a {role} must differ")
        event = msgspec.structs.replace(
            current, reason=reason, changed_at=utc_now(), changed_by=self.actor, **changes
        )
        self._write(event)
        return event.reason

    # ------------------------------------------------------------------ helpers

    def _gate(
        self,
        candidate: Bundle,
        live: Bundle,
        holdout: Holdout | None,
        force: bool,
        tolerance: float | None,
    ) -> GateResult | None:
        live_version = live.version
        tol = self.settings.model.gate_tolerance if tolerance is None else tolerance
        try:
            result = judge(
                candidate,
                live,
                tolerance=tol,
                metric=self.settings.model.gate_metric,
                holdout=holdout,
            )
        except GateRefusedError:
            if force:
                log.warning("promotion gate skipped (--force): the bundles cannot be compared")
                return None
            raise
        text = result.describe(candidate.version, live_version)
        if result.passed:
            log.info("promotion gate passed: %s", text)
        elif force:
            log.warning("promotion gate overridden (--force): %s", text)
        else:
            raise GateRefusedError(
                f"refused: {text}: {result.drop:.4f} worse, more than the tolerance. "
                "Pass --force to make it live anyway"
            )
        return result

    def live_bundle(self, state: ControlState | None = None) -> Bundle:
        """The live version's bundle, fetched and verified; ConfigError when none is live."""
        state = self.state() if state is None else state
        return self.bundle(state, self._require_live(state).version)

    def _require_live(self, state: ControlState) -> ModelLiveEvent:
        if state.live is None:
            raise ConfigError(
                f"nothing is live on {self.settings.topics.models} yet: publish a version "
                "with --live or promote one (prodcat models promote VERSION)"
            )
        return state.live

    def _set_live(
        self, state: ControlState, version: str, why: str, gate: GateResult | None
    ) -> str:
        current = state.live
        previous = current.version if current is not None else None
        reason = why if gate is None else f"{why}: {gate.describe(version, previous or '-')}"
        canary = current.canary_version if current is not None else None
        shadow = current.shadow_version if current is not None else None
        share = current.canary_share if current is not None else 0.0
        if canary == version:
            canary, share = None, 0.0
        event = ModelLiveEvent(
            event_type="model.live",
            version=version,
            previous_version=previous if previous != version else None,
            reason=reason[:500],
            changed_at=utc_now(),
            changed_by=self.actor,
            canary_version=canary,
            canary_share=share if canary else 0.0,
            shadow_version=shadow if shadow != version else None,
        )
        self._write(event)
        return f"{version} is live (was {previous or 'none'})"

    def _write(self, event: ModelPublishedEvent | ModelLiveEvent) -> None:
        if self._writer is None:
            self._writer = ControlWriter(self.settings, timeout_s=self.timeout_s)
        self._writer.write(event)
