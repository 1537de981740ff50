"""Settings: env parsing with the PRODCAT_ prefix, overrides, secrets, README table."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from workers.cli.common import settings_from
from workers.cli.main import build_parser
from workers.core.settings import Settings, load_settings, settings_rows

README = Path(__file__).resolve().parents[3] / "README.md"


def test_env_nested_sections(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRODCAT_KAFKA_BOOTSTRAP", "broker-1:9092,broker-2:9092")
    monkeypatch.setenv("PRODCAT_KAFKA_SSL_CA_LOCATION", "/etc/ca.pem")
    monkeypatch.setenv("PRODCAT_REDIS_URL", "redis://cache:6380/2")
    monkeypatch.setenv("PRODCAT_CLASSIFY_BATCH_MAX", "250")
    monkeypatch.setenv("PRODCAT_DATA_DIR", "/data/catalogs")
    s = Settings()
    assert s.kafka.bootstrap == "broker-1:9092,broker-2:9092"
    assert s.kafka.ssl_ca_location == Path("/etc/ca.pem")
    assert s.redis.url == "redis://cache:6380/2"
    assert s.classify.batch_max == 250
    assert s.data_dir == Path("/data/catalogs")


def test_invalid_value_names_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRODCAT_CLASSIFY_BATCH_MAX", "0")
    with pytest.raises(ValidationError, match="batch_max"):
        Settings()


def test_frozen() -> None:
    s = Settings()
    with pytest.raises(ValidationError):
        s.log_level = "DEBUG"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        s.kafka.bootstrap = "x"  # type: ignore[misc]


def test_cli_flags_override_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRODCAT_KAFKA_BOOTSTRAP", "from-env:9092")
    monkeypatch.setenv("PRODCAT_KAFKA_PARTITIONS", "12")
    args = build_parser().parse_args(["predict", "x.csv", "--bootstrap", "from-flag:9092"])
    s = settings_from(args)
    assert s.kafka.bootstrap == "from-flag:9092"
    assert s.kafka.partitions == 12  # untouched env value survives the override


def test_secrets_are_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRODCAT_KAFKA_SASL_PASSWORD", "hunter2-kafka")
    monkeypatch.setenv("PRODCAT_REDIS_PASSWORD", "hunter2-redis")
    s = load_settings()
    for text in (repr(s), str(s), s.model_dump_json()):
        assert "hunter2" not in text
    assert s.kafka.librdkafka()["sasl.password"] == "hunter2-kafka"


def test_readme_documents_every_setting() -> None:
    text = README.read_text(encoding="utf-8")
    missing = [env for env, _, _ in settings_rows() if f"`{env}`" not in text]
    assert not missing, (
        f"README.md configuration table lacks {missing}; run python -m workers.core.settings"
    )
