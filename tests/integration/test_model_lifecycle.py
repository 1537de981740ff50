"""Model lifecycle against the real Kafka and Redis: publish, hot swap, reject, roll back,
shadow and canary, with real trained bundles and real catalog rows.

Model A is the session's trained bundle; model B is A with its output layer perturbed
(seeded noise, :func:`derive_bundle`): a different model that agrees with A on part of
the products only. Each test has its own topics, control topic, consumer group, Redis
namespace and model store directory.
"""

from __future__ import annotations

import functools
import itertools
import json
import threading
import time
from collections import defaultdict
from pathlib import Path

import msgspec
import pytest

from export.data.catalog import Example
from tests.integration.classify_support import (
    CATEGORIZED,
    Setup,
    WorkerThread,
    categorized,
    causation_counts,
    produce_events,
    product_events,
    read_all,
    running_worker,
    text_of,
    wait_for,
)
from tests.integration.model_lifecycle_support import corrupt_bundle, derive_bundle
from workers.classify.factory import open_worker
from workers.core.errors import BundleError, ConfigError
from workers.core.events import CategorizedEvent, ModelLiveEvent, utc_now
from workers.inference.bundle import load_bundle, verify_manifest
from workers.inference.featurizer import Featurizer
from workers.inference.model import Classifier
from workers.lifecycle.admin import ModelAdmin, check_bundle, published_event
from workers.lifecycle.control import ControlWriter
from workers.lifecycle.gate import GateRefusedError
from workers.lifecycle.modelset import canary_point

pytestmark = [pytest.mark.integration, pytest.mark.slow]

B_NOISE = 3.0


@pytest.fixture(scope="session")
def model_pair(
    classify_bundle: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path]:
    """(A, B): the trained bundle and a perturbed copy of it under its own version."""
    a = classify_bundle
    version_b = f"{load_bundle(a).version}-b"
    b = derive_bundle(a, tmp_path_factory.mktemp("lifecycle") / version_b, version_b, noise=B_NOISE)
    return a, b


@pytest.fixture
def setup(setup: Setup, tmp_path: Path) -> Setup:
    """The integration setup, serving from a model store instead of a local bundle."""
    setup.extra["model"] = {"bundle": None, "store": str(tmp_path / "store")}
    return setup


def _admin(s: Setup) -> ModelAdmin:
    return ModelAdmin(s.settings(), actor="lifecycle-test")


def _admin_with_pair(s: Setup, live: Path, other: Path) -> ModelAdmin:
    """An admin for ``s`` with ``live`` published as the live version and ``other`` published."""
    admin = _admin(s)
    admin.publish(live, live=True)
    admin.publish(other)
    return admin


def _distinct(rows: list[Example], bundle: Path) -> list[Example]:
    """``rows`` without repeated model inputs (the first row of each content hash)."""
    featurizer = Featurizer(load_bundle(bundle).featurizer)
    by_hash: dict[str, Example] = {}
    for e in rows:
        by_hash.setdefault(featurizer.content_hash(text_of(e)), e)
    return list(by_hash.values())


@functools.cache
def _version(bundle: Path) -> str:
    return load_bundle(bundle).version


def _serving(w: WorkerThread) -> str:
    assert w.worker.pipeline is not None
    return w.worker.pipeline.version


def _metric(w: WorkerThread, name: str, labels: dict[str, str]) -> float:
    value = w.worker.metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def _holdout(rows: list[Example], path: Path) -> Path:
    with path.open("w", encoding="utf-8") as fh:
        for e in rows:
            record = {
                "product_id": e.product_id,
                "title": e.title,
                "brand": e.brand,
                "attributes": e.attributes,
                "category_path": list(e.path),
            }
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path


# --------------------------------------------------------------------------- publish, gate


def test_publish_checks_and_the_gate_refuses_a_worse_model_saying_by_how_much(
    setup: Setup,
    model_pair: tuple[Path, Path],
    catalog_rows: list[Example],
    tmp_path: Path,
) -> None:
    a, b = model_pair
    admin = _admin(setup)
    admin.publish(a, live=True)
    holdout = _holdout(catalog_rows[3000:3600], tmp_path / "holdout.jsonl")
    # B is derived from A and carries no evaluation of its own: the stored figures cannot
    # judge it, so the gate asks for a holdout, which it scores both on (serving path).
    with pytest.raises(GateRefusedError, match=r"no stored evaluation figure.*--holdout"):
        admin.publish(b, live=True)
    with pytest.raises(GateRefusedError, match=r"refused: .* below live .* worse") as refused:
        admin.publish(b, live=True, holdout=holdout, tolerance=0.0)
    assert "tolerance 0" in str(refused.value)
    state = admin.state()
    assert state.live_version == _version(a)  # refused: nothing moved
    assert _version(b) not in state.published
    # Within the tolerance (or forced) it goes through, and the reason records the figures.
    admin.publish(b, live=True, holdout=holdout, tolerance=0.5)
    state = admin.state()
    assert state.live is not None and state.live.version == _version(b)
    assert state.live.previous_version == _version(a)
    assert "weighted_f1" in state.live.reason
    rows = {r["version"]: r for r in admin.rows()}
    assert rows[_version(b)]["role"] == "live" and rows[_version(a)]["role"] == ""
    # Published bundles are immutable: the same version with other bytes is refused.
    other = derive_bundle(a, tmp_path / "other", _version(b), noise=1.0, seed=7)
    with pytest.raises(Exception, match="immutable"):
        admin.publish(other)


# --------------------------------------------------------------------------- hot swap


def test_new_version_mid_stream_every_input_one_output_one_switch_per_partition(
    setup: Setup, model_pair: tuple[Path, Path], catalog_rows: list[Example]
) -> None:
    a, b = model_pair
    s = setup
    admin = _admin(s)
    admin.publish(a, live=True)
    events = product_events(catalog_rows[:3000], "swap")
    with running_worker(s.settings()) as w:
        assert _serving(w) == _version(a)
        sent = [0]
        swapped = threading.Event()

        def feed() -> None:  # bursts of 100 every 0.2 s; the last third only after the swap
            for i in range(0, len(events), 100):
                if i >= 2000:
                    swapped.wait(60)
                produce_events(s.bootstrap, s.topics["product_created"], events[i : i + 100])
                sent[0] = i + 100
                time.sleep(0.2)

        feeder = threading.Thread(target=feed, daemon=True)
        feeder.start()
        wait_for(lambda: sent[0] >= 500, 30, "the stream to flow")
        admin.publish(b, live=True, force=True)  # check, store, announce: while it flows
        wait_for(lambda: _serving(w) == _version(b), 30, "the worker to swap to B")
        swapped.set()
        feeder.join(60)
        out = categorized(read_all(s.bootstrap, s.topics["categorized"], expect=len(events)))
    counts = causation_counts(out)
    assert len(out) == len(events)
    assert set(counts) == {e.event_id for e in events}
    assert set(counts.values()) == {1}
    # Per output partition (keys, hence partitions, follow the input), in offset order:
    # A...A then B...B.
    messages = read_all(s.bootstrap, s.topics["categorized"], expect=len(events), settle_s=0.2)
    by_partition: dict[int, list[str]] = defaultdict(list)
    for m in sorted(messages, key=lambda m: (m.partition(), m.offset())):
        by_partition[m.partition()].append(CATEGORIZED.decode(m.value()).model_version)
    switched = 0
    for partition, versions in by_partition.items():
        changes = sum(1 for x, y in itertools.pairwise(versions) if x != y)
        assert changes <= 1, f"partition {partition} switched {changes} times"
        assert versions[0] == _version(a), partition
        assert versions[-1] == _version(b), partition
        switched += changes
    assert switched == len(by_partition)
    assert _metric(w, "prodcat_model_swaps_total", {"version": _version(b)}) == 1


CORRUPTIONS = [
    ("bad-sha256", "verify"),
    ("truncated-onnx", "load"),
    ("unsupported-featurizer", "verify"),
]


def test_corrupted_bundles_are_rejected_and_the_old_version_keeps_serving(
    setup: Setup,
    model_pair: tuple[Path, Path],
    catalog_rows: list[Example],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    a, _ = model_pair
    s = setup
    admin = _admin(s)
    admin.publish(a, live=True)
    store = Path(s.settings().model.store)
    writer = ControlWriter(s.settings())
    with running_worker(s.settings()) as w:
        for how, stage in CORRUPTIONS:
            version = f"broken-{how}"
            record = published_event(load_bundle(derive_bundle(a, tmp_path / how, version)), "x")
            # Written straight into the store and announced without publish's checks: what a
            # broken disk or a buggy publisher would leave behind. publish itself refuses it.
            broken = corrupt_bundle(a, store / version, version, how)
            with pytest.raises(BundleError):
                check_bundle(broken)
            if how != "bad-sha256":  # re-manifested: the record carries the broken sha256
                record = msgspec.structs.replace(record, sha256=verify_manifest(broken))
            writer.write(msgspec.structs.replace(record, location=str(broken)))
            writer.write(_live(version, previous=_version(a)))
            labels = {"version": version, "stage": stage}
            wait_for(
                lambda labels=labels: _metric(w, "prodcat_model_rejected_total", labels) == 1,
                30,
                f"the {how} bundle to be rejected at {stage}",
            )
            assert _serving(w) == _version(a)
            assert any(
                f"model {version} rejected at {stage}" in r.getMessage()
                and f"still serving {_version(a)}" in r.getMessage()
                for r in caplog.records
            )
        events = product_events(catalog_rows[:300], "corrupt")
        produce_events(s.bootstrap, s.topics["product_created"], events)
        out = categorized(read_all(s.bootstrap, s.topics["categorized"], expect=len(events)))
        assert _serving(w) == _version(a)
    assert len(out) == len(events)
    assert {e.model_version for e in out} == {_version(a)}


def _live(version: str, previous: str | None = None, **extra: object) -> ModelLiveEvent:
    return ModelLiveEvent(
        event_type="model.live",
        version=version,
        previous_version=previous,
        reason="test",
        changed_at=utc_now(),
        changed_by="lifecycle-test",
        **extra,  # type: ignore[arg-type]
    )


def test_rollback_reaches_both_running_workers_and_cached_answers_stay_per_version(
    setup: Setup, model_pair: tuple[Path, Path], catalog_rows: list[Example]
) -> None:
    a, b = model_pair
    s = setup
    admin = _admin_with_pair(s, a, b)
    rows = _distinct(catalog_rows[:450], a)  # no cache hits within a round
    topic = s.topics["product_created"]
    outputs: list[list[CategorizedEvent]] = []

    def round_trip(tag: str) -> None:  # the same products (and texts) again, new event ids
        events = product_events(rows, tag)
        produce_events(s.bootstrap, topic, events)
        seen = sum(len(o) for o in outputs) + len(events)
        out = categorized(read_all(s.bootstrap, s.topics["categorized"], expect=seen))
        outputs.append([e for e in out if e.causation_id.startswith(f"{tag}-")])
        assert len(outputs[-1]) == len(events)

    settings = s.settings()
    with running_worker(settings, "one") as w1, running_worker(settings, "two") as w2:
        assert _serving(w1) == _serving(w2) == _version(a)
        round_trip("on-a")  # A answers and caches under its version
        admin.promote(_version(b), force=True)
        wait_for(lambda: _serving(w1) == _serving(w2) == _version(b), 30, "both on B")
        round_trip("on-b")  # B must not serve A's cached answers
        admin.rollback()
        wait_for(lambda: _serving(w1) == _serving(w2) == _version(a), 30, "both back on A")
        round_trip("back-on-a")
    live = admin.state().live
    assert live is not None and live.version == _version(a)
    assert live.previous_version == _version(b) and live.reason.startswith("rollback")
    on_a, on_b, back = outputs
    assert {e.model_version for e in on_a} == {e.model_version for e in back} == {_version(a)}
    assert {e.model_version for e in on_b} == {_version(b)}
    assert {e.source for e in on_a} == {e.source for e in on_b} == {"model"}
    assert {e.source for e in back} == {"cache"}  # A's own answers, still cached under A


# --------------------------------------------------------------------------- shadow, canary


def test_shadow_counts_agreement_of_a_known_pair(
    setup: Setup, model_pair: tuple[Path, Path], catalog_rows: list[Example]
) -> None:
    a, b = model_pair
    s = setup
    admin = _admin_with_pair(s, a, b)
    rows = _distinct(catalog_rows[:1500], a)  # so that "compared" counts each text once
    model_a, model_b = Classifier.from_path(a), Classifier.from_path(b)
    items = [text_of(e) for e in rows]
    expected = sum(
        x.category_id == y.category_id
        for x, y in zip(model_a.classify(items), model_b.classify(items), strict=True)
    )
    assert 0 < expected < len(rows), "the pair must agree on some products, not all"
    with running_worker(s.settings()) as w:
        admin.shadow(_version(b))
        wait_for(
            lambda: w.worker.pipeline is not None and w.worker.pipeline.models.shadow is not None,
            30,
            "the shadow to load",
        )
        events = product_events(rows, "shadow")
        produce_events(s.bootstrap, s.topics["product_created"], events)
        out = categorized(read_all(s.bootstrap, s.topics["categorized"], expect=len(events)))
        labels = {"live": _version(a), "shadow": _version(b)}
        wait_for(
            lambda: _metric(w, "prodcat_shadow_compared_total", labels) >= len(rows), 10, "counts"
        )
        compared = _metric(w, "prodcat_shadow_compared_total", labels)
        agreed = _metric(w, "prodcat_shadow_agreed_total", labels)
        shifts = _metric(w, "prodcat_shadow_confidence_shift_count", labels)
        shadow_time = _metric(
            w, "prodcat_model_batch_seconds_count", {"version": _version(b), "role": "shadow"}
        )
    assert len(out) == len(events)
    assert {e.model_version for e in out} == {_version(a)}  # shadow outputs are not published
    assert compared == len(rows)
    assert agreed == expected
    assert shifts == len(rows)
    assert shadow_time > 0


def test_canary_share_and_stability_on_10000_products(
    setup: Setup, model_pair: tuple[Path, Path], catalog_rows: list[Example]
) -> None:
    a, b = model_pair
    s = setup
    admin = _admin(s)
    admin.publish(a, live=True)
    admin.publish(b)
    share = 0.2
    rows = catalog_rows[:2500]
    created = [e for copy in range(4) for e in product_events(rows, "canary", copy)]  # 10,000
    again = product_events(rows[:1000], "canary-again", copy=0)  # same products, new events
    with running_worker(s.settings()) as w:
        admin.canary(_version(b), share)
        wait_for(
            lambda: w.worker.pipeline is not None and w.worker.pipeline.models.canary is not None,
            30,
            "the canary to load",
        )
        produce_events(s.bootstrap, s.topics["product_created"], created)
        produce_events(s.bootstrap, s.topics["product_updated"], again)
        total = len(created) + len(again)
        out = categorized(read_all(s.bootstrap, s.topics["categorized"], expect=total))
    assert len(out) == total
    first = {
        e.product_id: e.model_version for e in out if not e.causation_id.startswith("canary-again")
    }
    assert len(first) == len(created)
    served_b = sum(1 for v in first.values() if v == _version(b)) / len(first)
    assert abs(served_b - share) < 0.02, served_b
    for e in out:  # each product's version is fixed by its id: both events agree
        want = _version(b) if canary_point(e.product_id) < share else _version(a)
        assert e.model_version == want, e.product_id
    assert {e.model_version for e in out if e.causation_id.startswith("canary-again")} == {
        _version(a),
        _version(b),
    }


# --------------------------------------------------------------------------- start-up


def test_start_without_a_reachable_store_uses_the_local_bundle_or_refuses(
    setup: Setup, model_pair: tuple[Path, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    a, _ = model_pair
    s = setup
    _admin(s).publish(a, live=True)
    cases = [
        # no store at all: refused before connecting to anything
        (tmp_path / "not-mounted", r"no model bundle: model store .*not-mounted.*refusing"),
        # a store without the live version: refused after reading the control topic
        (tmp_path / "empty-store", r"refusing to become ready: model .* rejected at fetch"),
    ]
    (tmp_path / "empty-store").mkdir()
    for store, message in cases:
        s.extra["model"] = {"bundle": None, "store": str(store)}
        threads = set(threading.enumerate())
        with pytest.raises(ConfigError, match=message):
            open_worker(s.settings(), instance="refuses")
        # nothing of the half-built worker is left running
        assert {t for t in threading.enumerate() if t not in threads and not t.daemon} == set()
    s.extra["model"] = {"bundle": str(a), "store": str(tmp_path / "not-mounted")}
    with running_worker(s.settings()) as w:
        assert _serving(w) == _version(a)
    assert any("serving the local bundle" in r.getMessage() for r in caplog.records)
