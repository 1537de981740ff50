"""Secrets pass through to real servers and never show in logs, metrics or errors.

A private ``redis-server`` (Debian's, the one deploy/local/stack uses) runs on a free
loopback port with AUTH required and an ACL user, so the shared stack's Redis is left
alone. A ``prodcat classify`` process gets the Redis user and password and a Kafka SASL
password through PRODCAT_* variables, at DEBUG log level, and classifies real catalog rows:
its cache writes land in the private Redis (the credentials reached the client), and
neither its logs nor /metrics, /healthz or /readyz contain any secret. Wrong credentials
make errors that name the setting to fix, never the value.
"""

from __future__ import annotations

import logging
import shutil
import signal
import subprocess
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from export.data.catalog import Example
from tests.integration.classify_support import (
    Setup,
    WorkerProcess,
    categorized,
    free_port,
    produce_events,
    product_events,
    read_all,
    wait_for,
)
from workers.classify.cache import ResultCache
from workers.core.errors import ServiceUnavailableError
from workers.core.settings import RedisSettings, Settings
from workers.kafka.sandbox import TopicSandbox
from workers.process.connectivity import check_kafka, check_redis

REDIS_USER = "prodcat-worker"
REDIS_PASSWORD = f"redis-pw-{uuid.uuid4().hex}"
SASL_PASSWORD = f"sasl-pw-{uuid.uuid4().hex}"
WRONG_PASSWORD = f"wrong-pw-{uuid.uuid4().hex}"
ADMIN_PASSWORD = f"admin-pw-{uuid.uuid4().hex}"
SECRETS = (REDIS_PASSWORD, SASL_PASSWORD, WRONG_PASSWORD, ADMIN_PASSWORD)
EVENTS = 200


@pytest.fixture(scope="module")
def auth_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a private Redis requiring AUTH: user REDIS_USER, password REDIS_PASSWORD."""
    server = shutil.which("redis-server")
    if server is None:
        pytest.fail("redis-server not found: apt-get install redis-server (.ci/run does it)")
    port = free_port()
    workdir = tmp_path_factory.mktemp("auth-redis")
    proc = subprocess.Popen(
        [
            server,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
            "--requirepass",
            ADMIN_PASSWORD,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"

    def answers() -> bool:
        try:
            check_redis(
                RedisSettings(url=url, username=REDIS_USER, password=REDIS_PASSWORD),  # type: ignore[arg-type]
                timeout_s=1.0,
            )
        except ServiceUnavailableError:
            return False
        return True

    def admin_ready() -> bool:
        try:
            check_redis(url, timeout_s=1.0, password=ADMIN_PASSWORD)
        except ServiceUnavailableError:
            return False
        return True

    try:
        wait_for(admin_ready, 15, "the private Redis to start")
        admin = redis.Redis.from_url(url, password=ADMIN_PASSWORD)
        admin.acl_setuser(
            REDIS_USER,
            enabled=True,
            passwords=[f"+{REDIS_PASSWORD}"],
            keys=["*"],
            commands=["+@all"],
        )
        admin.close()
        wait_for(answers, 5, "the private Redis to accept the ACL user")
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def _assert_no_secret(text: str, where: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"a secret appears in {where}"


def test_wrong_redis_credentials_name_the_setting_not_the_value(auth_redis: str) -> None:
    with pytest.raises(ServiceUnavailableError) as caught:
        check_redis(
            RedisSettings(url=auth_redis, username=REDIS_USER, password=WRONG_PASSWORD),  # type: ignore[arg-type]
            timeout_s=2.0,
        )
    assert "PRODCAT_REDIS_PASSWORD" in str(caught.value)
    _assert_no_secret(str(caught.value), "the Redis error")
    # A password inside the URL is redacted too.
    host = auth_redis.removeprefix("redis://")
    with pytest.raises(ServiceUnavailableError) as caught:
        check_redis(f"redis://{REDIS_USER}:{WRONG_PASSWORD}@{host}", timeout_s=2.0)
    assert "***" in str(caught.value)
    _assert_no_secret(str(caught.value), "the Redis error for a URL with a password")


def test_cache_with_wrong_password_fails_soft_without_leaking(
    auth_redis: str, caplog: pytest.LogCaptureFixture
) -> None:
    errors: list[str] = []
    settings = RedisSettings(url=auth_redis, username=REDIS_USER, password=WRONG_PASSWORD)  # type: ignore[arg-type]
    cache = ResultCache(settings, on_error=errors.append)
    with caplog.at_level(logging.DEBUG):
        assert cache.lookup(["p1"], ["h1"], "v1") is None
    cache.close()
    assert errors == ["lookup"]
    assert "failed" in caplog.text
    _assert_no_secret(caplog.text, "the cache's log lines")
    right = RedisSettings(url=auth_redis, username=REDIS_USER, password=REDIS_PASSWORD)  # type: ignore[arg-type]
    good = ResultCache(right)
    try:
        assert good.lookup(["p1"], ["h1"], "v1") is not None
    finally:
        good.close()


def test_kafka_sasl_failure_does_not_leak_the_password(kafka_bootstrap: str) -> None:
    """SASL against the stack's PLAINTEXT listener fails; the error holds no password."""
    settings = Settings().with_overrides(
        kafka={
            "bootstrap": kafka_bootstrap,
            "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_username": "prodcat",
            "sasl_password": SASL_PASSWORD,
        }
    )
    with pytest.raises(ServiceUnavailableError) as caught:
        check_kafka(settings, timeout_s=3.0)
    _assert_no_secret(str(caught.value), "the Kafka error")


def _get(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return str(response.read().decode())
    except urllib.error.HTTPError as exc:  # /readyz answers 503 while not ready
        return str(exc.read().decode())


def test_worker_uses_the_credentials_and_never_shows_them(
    topic_factory: TopicSandbox,
    kafka_bootstrap: str,
    auth_redis: str,
    classify_bundle: Path,
    catalog_rows: list[Example],
    tmp_path: Path,
) -> None:
    setup = Setup.create(topic_factory, kafka_bootstrap, auth_redis, classify_bundle)
    port = free_port()
    setup.extra = {
        "redis": {"username": REDIS_USER, "password": REDIS_PASSWORD},
        # PLAINTEXT broker: the SASL password is configured but not used by the protocol.
        "kafka": {"sasl_username": "prodcat", "sasl_password": SASL_PASSWORD},
        "metrics": {"host": "127.0.0.1", "port": port},
    }
    assert setup.env()["PRODCAT_REDIS_PASSWORD"] == REDIS_PASSWORD
    events = product_events(catalog_rows[:EVENTS], "secret")
    produce_events(kafka_bootstrap, setup.topics["product_created"], events)
    worker = WorkerProcess(setup, tmp_path / "worker.log", "--log-level", "DEBUG")
    try:
        out = read_all(kafka_bootstrap, setup.topics["categorized"], expect=EVENTS, timeout_s=90)
        assert len({e.causation_id for e in categorized(out)}) == EVENTS, worker.logs()
        base = f"http://127.0.0.1:{port}"
        metrics = _get(f"{base}/metrics")
        bodies = {
            "/metrics": metrics,
            "/healthz": _get(f"{base}/healthz"),
            "/readyz": _get(f"{base}/readyz"),
        }
        # The cache wrote through AUTH as the ACL user.
        client = redis.Redis.from_url(auth_redis, username=REDIS_USER, password=REDIS_PASSWORD)
        try:
            wait_for(
                lambda: any(client.scan_iter(match=f"{setup.prefix}:result:*", count=1000)),
                30,
                "cached results in the private Redis",
            )
        finally:
            client.close()
        assert "prodcat_cache_available 1.0" in metrics
        worker.signal(signal.SIGTERM)
        assert worker.wait(60) == 0, worker.logs()
    finally:
        worker.kill()
    logs = worker.log_path.read_text(errors="replace")
    assert "DEBUG" in logs, "the worker did not log at DEBUG"
    _assert_no_secret(logs, "the worker's logs")
    for path, body in bodies.items():
        _assert_no_secret(body, path)


BUNDLE_SUFFIXES = {".onnx", ".json", ".md", ".png"}  # model, metadata/manifest, report


def test_bundles_are_onnx_and_json_and_verified(classify_bundle: Path, tmp_path: Path) -> None:
    """A trained bundle holds no pickles, and a file slipped into it is refused at load."""
    from workers.core.errors import BundleError
    from workers.inference.bundle import load_bundle

    files = [p for p in classify_bundle.rglob("*") if p.is_file()]
    assert {p.suffix for p in files} <= BUNDLE_SUFFIXES, sorted({p.suffix for p in files})
    assert (classify_bundle / "model.onnx").is_file()
    assert load_bundle(classify_bundle).root == classify_bundle
    copy = tmp_path / "bundle"
    shutil.copytree(classify_bundle, copy)
    (copy / "model.pkl").write_bytes(b"\x80\x04K\x01.")  # a pickle of the int 1
    with pytest.raises(BundleError, match=r"model\.pkl: file is not listed in the manifest"):
        load_bundle(copy)
