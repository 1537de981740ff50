"""Security settings reach the clients; secrets stay out of reprs; the HTTP bind address
is configurable. Pure: nothing here talks to Kafka or Redis (see
tests/integration/test_secrets.py for the running worker and real servers)."""

from __future__ import annotations

import socket
import urllib.request
from pathlib import Path

import pytest

from workers.classify.cache import _redis_client
from workers.core.settings import Settings
from workers.kafka.clients import consumer_config, producer_config
from workers.process.httpserver import HealthServer

SASL_PASSWORD = "sasl-Secret-4f1d9c"
KEY_PASSWORD = "key-Secret-77ab20"
REDIS_PASSWORD = "redis-Secret-0c3e51"
SECRETS = (SASL_PASSWORD, KEY_PASSWORD, REDIS_PASSWORD)


def secure_settings(tmp_path: Path) -> Settings:
    for name in ("ca.pem", "client.pem", "client.key", "redis-ca.pem"):
        (tmp_path / name).write_text("not a real certificate\n")
    return Settings().with_overrides(
        kafka={
            "bootstrap": "broker-1:9093,broker-2:9093",
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_username": "prodcat",
            "sasl_password": SASL_PASSWORD,
            "ssl_ca_location": str(tmp_path / "ca.pem"),
            "ssl_certificate_location": str(tmp_path / "client.pem"),
            "ssl_key_location": str(tmp_path / "client.key"),
            "ssl_key_password": KEY_PASSWORD,
        },
        redis={
            "url": "rediss://redis.example.internal:6380/2",
            "username": "prodcat",
            "password": REDIS_PASSWORD,
            "ssl_ca_certs": str(tmp_path / "redis-ca.pem"),
        },
    )


def test_kafka_sasl_and_ssl_reach_consumer_and_producer(tmp_path: Path) -> None:
    settings = secure_settings(tmp_path)
    expected = {
        "bootstrap.servers": "broker-1:9093,broker-2:9093",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "prodcat",
        "sasl.password": SASL_PASSWORD,
        "ssl.ca.location": str(tmp_path / "ca.pem"),
        "ssl.certificate.location": str(tmp_path / "client.pem"),
        "ssl.key.location": str(tmp_path / "client.key"),
        "ssl.key.password": KEY_PASSWORD,
    }
    for conf in (consumer_config(settings, "w1"), producer_config(settings, "w1")):
        assert {k: conf.get(k) for k in expected} == expected


def test_plaintext_kafka_sends_no_security_keys() -> None:
    conf = consumer_config(Settings(), "w1")
    assert conf["security.protocol"] == "PLAINTEXT"
    assert not [k for k in conf if k.startswith(("sasl.", "ssl."))]


def test_redis_auth_and_tls_reach_the_client(tmp_path: Path) -> None:
    settings = secure_settings(tmp_path)
    client = _redis_client(settings.redis)
    try:
        kwargs = client.connection_pool.connection_kwargs
        assert kwargs["username"] == "prodcat"
        assert kwargs["password"] == REDIS_PASSWORD
        assert kwargs["ssl_ca_certs"] == str(tmp_path / "redis-ca.pem")
        assert kwargs["host"] == "redis.example.internal" and kwargs["port"] == 6380
        assert client.connection_pool.connection_class.__name__ == "SSLConnection"
    finally:
        client.close()


def test_settings_never_show_secrets(tmp_path: Path) -> None:
    settings = secure_settings(tmp_path)
    shown = [
        repr(settings),
        str(settings),
        settings.model_dump_json(),
        str(settings.model_dump()),
        repr(settings.kafka),
        repr(settings.redis),
    ]
    for text in shown:
        for secret in SECRETS:
            assert secret not in text


def test_bad_secret_setting_error_does_not_echo_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """A validation error elsewhere in the settings does not print the secret values."""
    monkeypatch.setenv("PRODCAT_KAFKA_SASL_PASSWORD", SASL_PASSWORD)
    monkeypatch.setenv("PRODCAT_REDIS_PASSWORD", REDIS_PASSWORD)
    monkeypatch.setenv("PRODCAT_KAFKA_SECURITY_PROTOCOL", "SASL_SSLX")
    with pytest.raises(ValueError, match="security_protocol") as caught:
        Settings(_env_file=None)  # type: ignore[call-arg]
    for secret in SECRETS:
        assert secret not in str(caught.value)


def _reachable(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1.0)
        return s.connect_ex((host, port)) == 0


def test_health_server_binds_the_configured_address() -> None:
    """PRODCAT_METRICS_HOST is honoured: bound to 127.0.0.2, it is not on 127.0.0.1."""
    server = HealthServer(
        "127.0.0.2", 0, metrics=lambda: b"prodcat_up 1\n", readiness=lambda: {"ok": True}
    )
    server.start()
    try:
        assert _reachable("127.0.0.2", server.port)
        assert not _reachable("127.0.0.1", server.port)
        with urllib.request.urlopen(f"http://127.0.0.2:{server.port}/readyz", timeout=3) as r:
            assert r.status == 200
    finally:
        server.close()
    assert Settings().metrics.host == "127.0.0.1", "the default must stay loopback-only"


UNSAFE_LOADERS = {"pickle", "cPickle", "dill", "cloudpickle", "joblib", "shelve", "marshal"}


def test_serving_code_never_unpickles() -> None:
    """No module of the serving package imports a pickle-style loader, or lets numpy do it."""
    import ast

    root = Path(__file__).resolve().parents[3] / "workers"
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                names = {(node.module or "").split(".")[0]}
            else:
                names = set()
            assert not names & UNSAFE_LOADERS, f"{path}:{node.lineno} imports {names}"
            if isinstance(node, ast.keyword) and node.arg == "allow_pickle":
                assert isinstance(node.value, ast.Constant) and node.value.value is False, (
                    f"{path}: allow_pickle"
                )
