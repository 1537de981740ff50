"""Hot swap: follow the control topic, load new models off the hot path, hand them over.

::

    switcher = ModelSwitcher(settings, metrics.lifecycle)
    models = switcher.initial(timeout_s)   # the live version, or the local bundle, or refuse
    switcher.start(sample=recent_texts)    # follower thread; new models warm up on samples
    ...
    pending = switcher.take()              # in the batch loop, between batches
    if pending is not None: pipeline.models = pending

The follower thread reads ``prodcat.models``. When the ``live`` record names a different set
(live version, canary and share, shadow), it fetches each new bundle from the model store,
verifies its sha256 against the ``model.published`` record, loads the ONNX session and warms
it on recent real inputs, all on its own thread, then offers the finished
:class:`~workers.lifecycle.modelset.ModelSet`. The batch loop switches to it between two batches: a
pointer assignment. A bundle that fails any stage is rejected: the worker keeps serving
what it has, counts ``prodcat_model_rejected_total{version,stage}`` and logs why.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from workers.core.errors import BundleError, ConfigError, ProdcatError
from workers.core.events import ModelPublishedEvent
from workers.core.product import ProductText
from workers.core.settings import Settings
from workers.inference.bundle import load_bundle
from workers.inference.model import Classifier
from workers.lifecycle.control import ControlReader, ControlState
from workers.lifecycle.metrics import LifecycleMetrics
from workers.lifecycle.modelset import ModelSet
from workers.lifecycle.store import ModelStore, StoreUnavailableError, open_store
from workers.process.osthreads import name_os_thread

__all__ = ["ModelLoader", "ModelRejectedError", "ModelSwitcher", "Wanted"]

log = logging.getLogger(__name__)

FOLLOW_POLL_S = 0.25
RETRY_FETCH_S = 30.0
"""A set rejected because its bundle could not be fetched (store unreachable, not copied
there yet) is tried again this often; other rejections wait for a new control record."""


class ModelRejectedError(ProdcatError):
    """A bundle failed one stage of fetch, verify, load, warm; ``stage`` says which."""

    def __init__(self, version: str, stage: str, message: str) -> None:
        super().__init__(f"model {version} rejected at {stage}: {message}")
        self.version = version
        self.stage = stage


@dataclass(frozen=True, slots=True)
class Wanted:
    """The model set the control topic asks for, with each version's published sha256."""

    live: tuple[str, str]
    canary: tuple[str, str] | None = None
    canary_share: float = 0.0
    shadow: tuple[str, str] | None = None

    @classmethod
    def from_state(cls, state: ControlState) -> Wanted | None:
        live = state.live
        if live is None:
            return None

        def pin(version: str | None) -> tuple[str, str] | None:
            if version is None:
                return None
            published = state.published.get(version)
            return (version, published.sha256 if published is not None else "")

        main = pin(live.version)
        assert main is not None
        return cls(
            live=main,
            canary=pin(live.canary_version) if live.canary_share > 0 else None,
            canary_share=live.canary_share if live.canary_version else 0.0,
            shadow=pin(live.shadow_version),
        )


class ModelLoader:
    """Fetch, verify, load and warm one published bundle, naming the stage that failed."""

    def __init__(self, store: ModelStore, settings: Settings, metrics: LifecycleMetrics) -> None:
        self.store = store
        self.threads = settings.model.intra_op_threads
        self.top_k = settings.model.top_k
        self.metrics = metrics

    def load(
        self, published: ModelPublishedEvent | None, version: str, sample: list[ProductText]
    ) -> Classifier:
        started = time.perf_counter()
        if published is None:
            raise self._reject(
                version,
                "unpublished",
                f"no model.published record for {version} on the control topic "
                "(never published, or retired); publish it first",
            )
        try:
            path = self.store.fetch(version)
        except (BundleError, StoreUnavailableError) as exc:
            raise self._reject(version, "fetch", str(exc)) from exc
        try:
            bundle = load_bundle(path, expected_sha256=published.sha256)
        except BundleError as exc:
            raise self._reject(version, "verify", str(exc)) from exc
        if bundle.version != version:
            raise self._reject(version, "verify", f"{path}: metadata says version {bundle.version}")
        try:
            classifier = Classifier(bundle, intra_op_threads=self.threads, top_k=self.top_k)
        except Exception as exc:  # BundleError, or onnxruntime's own errors
            raise self._reject(version, "load", str(exc)) from exc
        try:
            classifier.warm_up(sample or None)
            classifier.warm_up(sample[:1] or None)
        except Exception as exc:
            raise self._reject(version, "warm", f"{type(exc).__name__}: {exc}") from exc
        self.metrics.load_seconds.observe(time.perf_counter() - started)
        return classifier

    def _reject(self, version: str, stage: str, message: str) -> ModelRejectedError:
        self.metrics.rejected.labels(version, stage).inc()
        return ModelRejectedError(version, stage, message)


class ModelSwitcher:
    """Follows the control topic on a thread and prepares model sets for the batch loop."""

    def __init__(
        self,
        settings: Settings,
        metrics: LifecycleMetrics,
        *,
        sample: Callable[[], list[ProductText]] = list,
        store: ModelStore | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.store = store if store is not None else open_store(settings.model.store)
        self.loader = ModelLoader(self.store, settings, metrics)
        self.sample = sample
        self._reader: ControlReader | None = None  # created on first use: no early connection
        self._lock = threading.Lock()
        self._pending: ModelSet | None = None
        self._latest: ModelSet | None = None
        self._wanted: Wanted | None = None  # what _latest was built for (or last rejected)
        self._retry_at: float | None = None  # when to try a set rejected at fetch again
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def reader(self) -> ControlReader:
        if self._reader is None:
            self._reader = ControlReader(
                self.settings, "worker", on_bad_record=self.metrics.control_errors.inc
            )
        return self._reader

    # ------------------------------------------------------------------ start-up

    def initial(self, timeout_s: float) -> ModelSet:
        """The set to serve at start-up: the live version from the store; else the local
        bundle (``PRODCAT_MODEL_BUNDLE``); else refuse with :class:`ConfigError`."""
        state = self.reader.catch_up(timeout_s)
        wanted = Wanted.from_state(state)
        local = self.settings.model.bundle
        problem: str
        if wanted is None:
            problem = f"no live model on the control topic {self.reader.topic}"
        else:
            self._wanted = wanted
            try:
                self.store.check()
                models = self._build(state, wanted, None)
            except (StoreUnavailableError, ModelRejectedError) as exc:
                problem = str(exc)
                if not isinstance(exc, ModelRejectedError) or exc.stage == "fetch":
                    self._retry_at = time.monotonic() + RETRY_FETCH_S
            else:
                self._latest = models
                log.info(
                    "serving live model %s from the model store %s",
                    models.describe(),
                    self.store.describe(),
                )
                if local is not None:
                    log.info("the local bundle %s is not used: the live version is", local)
                return models
        if local is None:
            raise ConfigError(
                f"refusing to become ready: {problem}, and no local bundle is configured; "
                "publish one (prodcat publish BUNDLE --live), fix the store "
                "(PRODCAT_MODEL_STORE), or pass --bundle DIR / set PRODCAT_MODEL_BUNDLE"
            )
        log.warning("%s; serving the local bundle %s (PRODCAT_MODEL_BUNDLE)", problem, local)
        classifier = Classifier(
            load_bundle(Path(local)),
            intra_op_threads=self.settings.model.intra_op_threads,
            top_k=self.settings.model.top_k,
        )
        classifier.warm_up()
        self._latest = ModelSet(classifier)
        return self._latest

    # ------------------------------------------------------------------ following

    def start(self, sample: Callable[[], list[ProductText]] | None = None) -> None:
        """Follow the control topic on a thread; ``sample`` gives recent real inputs that
        new models are warmed up on before they are offered."""
        if sample is not None:
            self.sample = sample
        self._thread = threading.Thread(
            target=self._follow, name="prodcat-model-follower", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10.0)
        if self._reader is not None:
            self._reader.close()

    def take(self) -> ModelSet | None:
        """The newest prepared set not yet taken (None almost always; cheap)."""
        if self._pending is None:
            return None
        with self._lock:
            pending, self._pending = self._pending, None
        return pending

    def _follow(self) -> None:
        name_os_thread("prodcat-follow")
        while not self._stop.is_set():
            try:
                self.reader.poll(FOLLOW_POLL_S)
                self.refresh()
            except Exception:  # keep following; the current model keeps serving
                log.exception("model follower: unexpected error")
                self._stop.wait(1.0)

    def refresh(self) -> ModelSet | None:
        """Build and offer the set the control topic asks for, if it changed."""
        state = self.reader.state
        wanted = Wanted.from_state(state)
        retry = self._retry_at is not None and time.monotonic() >= self._retry_at
        if wanted is None or (wanted == self._wanted and not retry):
            return None
        self._wanted = wanted  # a rejected set is not retried until the record changes ...
        self._retry_at = None
        current = self._latest
        try:
            models = self._build(state, wanted, current)
        except ModelRejectedError as exc:
            if exc.stage == "fetch":  # ... unless the store may just not have it yet
                self._retry_at = time.monotonic() + RETRY_FETCH_S
            log.error(
                "%s; still serving %s",
                exc,
                current.describe() if current is not None else "nothing",
            )
            return None
        with self._lock:
            self._latest = self._pending = models
        log.info("model set %s is loaded and warm; switching between batches", models.describe())
        return models

    def _build(self, state: ControlState, wanted: Wanted, current: ModelSet | None) -> ModelSet:
        loaded = current.classifiers() if current is not None else {}
        sample = self.sample()

        def get(pin: tuple[str, str]) -> Classifier:
            version, sha = pin
            have = loaded.get(version)
            if have is not None and have.bundle.sha256 == sha:
                return have
            classifier = self.loader.load(state.published.get(version), version, sample)
            loaded[version] = classifier
            return classifier

        live = get(wanted.live)  # raises: nothing changes
        canary = shadow = None
        for role, pin in (("canary", wanted.canary), ("shadow", wanted.shadow)):
            if pin is None:
                continue
            try:
                found = get(pin)
            except ModelRejectedError as exc:
                log.error("%s; serving %s without that %s", exc, live.version, role)
                continue
            if role == "canary":
                canary = found
            else:
                shadow = found
        return ModelSet(
            live,
            canary=canary,
            canary_share=wanted.canary_share if canary is not None else 0.0,
            shadow=shadow,
        )
