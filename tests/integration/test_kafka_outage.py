"""A broker outage is a few log lines, not a flood: the classify worker and the feedback
app run as real processes against a broker of the tests' own, which is stopped for 10 s
and started again with ``deploy/local/stack up kafka`` (never the shared broker).

Before: a classify worker wrote 1,386 lines in such an outage (an ERROR and a WARNING per
connection attempt and client, and the control-topic consumer's raw librdkafka lines on
stderr); the feedback app 46,431 (aiokafka's metadata refresh retried with no pause).
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from confluent_kafka import Producer

from export.data.catalog import Example
from tests.integration.classify_support import (
    CODEC,
    REPO,
    Setup,
    WorkerProcess,
    delete_keys,
    free_port,
    produce_events,
    product_events,
    read_all,
    wait_for,
)
from tests.integration.private_kafka import PrivateKafka
from workers.core.settings import KafkaSettings
from workers.kafka.clients import writer_config

pytestmark = [pytest.mark.integration, pytest.mark.slow]

OUTAGE_S = 10.0
RECOVERY_TIMEOUT_S = 150.0
CLASSIFY_LINES_BOUND = 30
FEEDBACK_LINES_BOUND = 80
RAW_LIBRDKAFKA = re.compile(r"^%\d\|")  # what librdkafka writes to stderr without a logger


def _setup(kafka: PrivateKafka, redis_url: str, bundle: Path, *names: str) -> Setup:
    tag = uuid.uuid4().hex[:8]
    topics = {name: f"outage-{tag}.{name}" for name in names}
    return Setup(kafka.bootstrap, redis_url, bundle, topics)


def _lines_since(log: Path, mark: int) -> list[str]:
    return log.read_text(errors="replace").splitlines()[mark:]


def _outage(kafka: PrivateKafka, sig: signal.Signals) -> None:
    """Stop the broker with ``sig``, keep it down for OUTAGE_S, start it again."""
    kafka.stop(sig)
    time.sleep(OUTAGE_S)
    kafka.start()


def test_classify_worker_logs_an_outage_in_a_few_lines(
    private_kafka: PrivateKafka,
    redis_url: str,
    classify_bundle: Path,
    catalog_rows: list[Example],
    tmp_path: Path,
) -> None:
    s = _setup(
        private_kafka,
        redis_url,
        classify_bundle,
        "product_created",
        "product_updated",
        "categorized",
        "review",
        "dead_letter",
        "models",
    )
    log = tmp_path / "worker.log"
    worker = WorkerProcess(s, log, "--instance", "outage")
    try:
        wait_for(lambda: "assigned" in worker.logs(), 120, "the worker to get its partitions")
        created = s.topics["product_created"]
        produce_events(s.bootstrap, created, product_events(catalog_rows[:200], "before"))
        read_all(s.bootstrap, s.topics["categorized"], expect=200, timeout_s=60)
        mark = len(log.read_text().splitlines())

        _outage(private_kafka, signal.SIGKILL)

        wait_for(
            lambda: "reachable again" in worker.logs(),
            RECOVERY_TIMEOUT_S,
            "the worker to see the broker again",
        )
        produce_events(s.bootstrap, created, product_events(catalog_rows[200:400], "after"))
        out = read_all(s.bootstrap, s.topics["categorized"], expect=400, timeout_s=120)
        assert len(out) >= 400, "the worker did not classify after the outage"
        worker.signal(signal.SIGTERM)
        assert worker.wait(60) == 0, worker.logs()
    finally:
        worker.kill()
        delete_keys(redis_url, s.prefix)

    text = log.read_text(errors="replace")
    assert not [line for line in text.splitlines() if RAW_LIBRDKAFKA.match(line)]
    during = _lines_since(log, mark)
    shown = "\n".join(during)
    print(f"classify worker: {len(during)} log lines from a {OUTAGE_S:.0f} s outage to recovery")
    assert len(during) <= CLASSIFY_LINES_BOUND, shown
    assert sum("no broker reachable" in line for line in during) == 1, shown
    assert sum("Kafka brokers reachable again after" in line for line in during) == 1, shown
    assert any("(repeated" in line for line in during), shown  # the retries were counted


# --------------------------------------------------------------------------- feedback app


@contextmanager
def _feeding(bootstrap: str, topic: str, rows: list[Example]) -> Iterator[threading.Event]:
    """Sends feedback that breaks its contract (a product event where a correction belongs)
    at about 50 a second until the block ends: each one is dead-lettered, so the app
    produces all the time, also while the broker goes away."""
    stop = threading.Event()
    producer = Producer(writer_config(KafkaSettings(bootstrap=bootstrap), "outage-feeder"))
    events = product_events(rows, "not-feedback")

    def feed() -> None:
        i = 0
        while not stop.is_set():
            e = events[i % len(events)]
            try:
                producer.produce(topic, CODEC.encode(e), e.product_id.encode())
            except BufferError:
                producer.poll(0.5)
                continue
            producer.poll(0)
            i += 1
            time.sleep(0.02)

    thread = threading.Thread(target=feed, daemon=True)
    thread.start()
    try:
        yield stop
    finally:
        stop.set()
        thread.join(10)
        producer.flush(10)


def test_feedback_app_logs_an_outage_in_a_few_lines(
    private_kafka: PrivateKafka,
    redis_url: str,
    classify_bundle: Path,
    catalog_rows: list[Example],
    tmp_path: Path,
) -> None:
    s = _setup(
        private_kafka,
        redis_url,
        classify_bundle,
        "product_created",
        "product_updated",
        "categorized",
        "feedback",
        "labels",
        "dead_letter",
        "models",
    )
    s.extra["feedback"] = {
        "app_id": f"prodcat-fb-outage-{uuid.uuid4().hex[:8]}",
        "state_dir": str(tmp_path / "faust"),
    }
    log = tmp_path / "feedback.log"
    out = log.open("ab")
    app = subprocess.Popen(
        [sys.executable, "-m", "workers.cli", "feedback", "--instance", "outage"],
        cwd=REPO,
        env=s.env(),
        stdout=out,
        stderr=subprocess.STDOUT,
    )

    def logs() -> str:
        return log.read_text(errors="replace")

    def dead_lettered() -> int:
        return logs().count("dead-lettered")

    try:
        started = re.compile(r"feedback app \S+ started")
        wait_for(lambda: started.search(logs()) is not None, 120, "the app to start")
        with _feeding(s.bootstrap, s.topics["feedback"], catalog_rows[:500]):
            wait_for(lambda: dead_lettered() >= 50, 60, "the app to dead-letter the feed")
            mark = len(logs().splitlines())

            _outage(private_kafka, signal.SIGTERM)  # a clean broker stop: the worst case

            before = dead_lettered()
            wait_for(
                lambda: dead_lettered() >= before + 50,
                RECOVERY_TIMEOUT_S,
                "the app to dead-letter again after the outage",
            )
        app.send_signal(signal.SIGTERM)
        assert app.wait(60) == 0, logs()[-3000:]
    finally:
        if app.poll() is None:
            app.kill()
            app.wait(30)
        out.close()
        delete_keys(redis_url, s.prefix)

    during = [
        line
        for line in _lines_since(log, mark)
        if "workers.kafka.deadletter" not in line and not line.startswith(("|", "+"))
    ]  # one line per dead letter is by design; faust's recovery tables are not log lines
    shown = "\n".join(during[:200])
    stopping = next((i for i, line in enumerate(during) if "SIGTERM: draining" in line), None)
    print(
        f"feedback app: {len(during)} log lines from a {OUTAGE_S:.0f} s outage to its exit, "
        f"{stopping} of them before it was told to stop (then faust's shutdown lines and the "
        "held-back counts)"
    )
    assert not [line for line in logs().splitlines() if RAW_LIBRDKAFKA.match(line)]
    assert len(during) <= FEEDBACK_LINES_BOUND, shown
    assert any("(repeated" in line for line in during), shown


def test_kafka_down_at_start_is_a_few_lines_then_one_clear_error(
    redis_url: str, classify_bundle: Path, tmp_path: Path
) -> None:
    s = Setup(f"127.0.0.1:{free_port()}", redis_url, classify_bundle, {})  # nothing listens
    log = tmp_path / "worker.log"
    worker = WorkerProcess(s, log, "--instance", "no-kafka")
    try:
        assert worker.wait(90) == 1, worker.logs()
    finally:
        worker.kill()
    lines = log.read_text(errors="replace").splitlines()
    shown = "\n".join(lines)
    print(f"classify worker, no broker at start: {len(lines)} log lines")
    assert len(lines) <= 6, shown  # before: 292 lines, most of them raw librdkafka ones
    assert not [line for line in lines if RAW_LIBRDKAFKA.match(line)], shown
    assert sum("does not answer yet" in line for line in lines) == 1, shown  # at once
    assert "did not answer within 15 s" in shown
    assert "PRODCAT_KAFKA_BOOTSTRAP" in shown
