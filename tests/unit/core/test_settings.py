"""Settings: env parsing with the PRODCAT_ prefix, overrides, secrets, README table."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from workers.cli.common import settings_from
from workers.cli.main import build_parser, main
from workers.core.environment import unknown_variables
from workers.core.settings import (
    Settings,
    SettingsError,
    load_settings,
    setting_variables,
    settings_rows,
)

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
    args = build_parser().parse_args(["classify", "--bootstrap", "from-flag:9092"])
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


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No PRODCAT_* variable from the test run's own environment."""
    import os

    for name in [k for k in os.environ if k.startswith("PRODCAT_")]:
        monkeypatch.delenv(name)
    return monkeypatch


@pytest.mark.parametrize(
    "url",
    [
        "notaurl",
        "http://cache:6379/0",
        "redis://",
        "redis://cache:port/0",
        "redis://cache:6379/zero",
        "redis://:hunter2@cache:99999/0",
        "unix://",
    ],
)
def test_a_malformed_redis_url_is_refused_at_load(clean_env: pytest.MonkeyPatch, url: str) -> None:
    clean_env.setenv("PRODCAT_REDIS_URL", url)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert "PRODCAT_REDIS_URL" in message and "redis://" in message
    assert "redis.url" not in message
    assert "hunter2" not in message  # a password in the URL is masked


@pytest.mark.parametrize(
    "url",
    [
        "redis://cache:6379/2",
        "rediss://user:pw@cache:6380",
        "unix:///run/redis.sock",
        "redis://[::1]",
    ],
)
def test_good_redis_urls_load(clean_env: pytest.MonkeyPatch, url: str) -> None:
    clean_env.setenv("PRODCAT_REDIS_URL", url)
    assert load_settings().redis.url == url


@pytest.mark.parametrize(
    "bootstrap",
    [
        "",
        "http://kafka:9092",
        "kafka:99999",
        "kafka-1:9092,,kafka-2:9092",
        "kafka:9092/x",
        "a b:9092",
    ],
)
def test_a_malformed_bootstrap_list_is_refused(
    clean_env: pytest.MonkeyPatch, bootstrap: str
) -> None:
    clean_env.setenv("PRODCAT_KAFKA_BOOTSTRAP", bootstrap)
    with pytest.raises(SettingsError, match=r"PRODCAT_KAFKA_BOOTSTRAP.*host:port"):
        load_settings()


def test_bootstrap_lists_load_normalized(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv(
        "PRODCAT_KAFKA_BOOTSTRAP", " kafka-1:9092 , SASL_SSL://kafka-2:9093,[::1]:9092"
    )
    assert load_settings().kafka.bootstrap == "kafka-1:9092,SASL_SSL://kafka-2:9093,[::1]:9092"
    clean_env.setenv("PRODCAT_KAFKA_BOOTSTRAP", "kafka")  # librdkafka's default port
    assert load_settings().kafka.bootstrap == "kafka"


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("PRODCAT_CLASSIFY_BATCH_MAX", "0", "PRODCAT_CLASSIFY_BATCH_MAX: '0': Input should be"),
        ("PRODCAT_FEEDBACK_STORE", "redis://x", "PRODCAT_FEEDBACK_STORE: 'redis://x' is not"),
        ("PRODCAT_MODEL_STORE", "s3://bucket/models", "PRODCAT_MODEL_STORE: 's3://bucket"),
        ("PRODCAT_METRICS_HOST", "http://0.0.0.0:9108", "PRODCAT_METRICS_HOST: 'http://"),
        ("PRODCAT_LOG_LEVEL", "verbose", "PRODCAT_LOG_LEVEL: 'verbose' is not a log level"),
    ],
)
def test_messages_name_the_environment_variable(
    clean_env: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    clean_env.setenv(variable, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert expected in str(caught.value)
    assert "classify.batch_max" not in str(caught.value)


def test_every_bad_setting_is_named_at_once(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("PRODCAT_CLASSIFY_BATCH_MAX", "0")
    clean_env.setenv("PRODCAT_REDIS_URL", "notaurl")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert "PRODCAT_CLASSIFY_BATCH_MAX" in str(caught.value)
    assert "PRODCAT_REDIS_URL" in str(caught.value)


def test_a_bad_flag_value_says_it_came_from_a_flag(clean_env: pytest.MonkeyPatch) -> None:
    with pytest.raises(SettingsError, match=r"PRODCAT_REDIS_URL \(from a command-line flag\)"):
        load_settings(redis={"url": "http://cache"})


def test_log_level_is_case_insensitive(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("PRODCAT_LOG_LEVEL", "debug")
    assert load_settings().log_level == "DEBUG"


def test_main_refuses_bad_settings_before_the_command_runs(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """No traceback and no handler run (nothing connects, no topic is created): exit 2
    with one line per bad variable."""
    clean_env.setenv("PRODCAT_REDIS_URL", "notaurl")
    clean_env.setattr(
        "workers.classify.factory.open_worker",
        lambda *a, **k: pytest.fail("the worker was started despite bad settings"),
    )
    assert main(["classify", "--metrics-port", "0"]) == 2
    err = capsys.readouterr().err
    assert "PRODCAT_REDIS_URL: 'notaurl' is not a Redis URL" in err
    assert "Traceback" not in err


def test_unknown_variables_suggest_the_closest_setting() -> None:
    env = {
        "PRODCAT_CLASSIFY_BATCHMAX": "100",
        "PRODCAT_REDIS_URI": "redis://x",
        "PRODCAT_WHATEVER_THING": "1",
        "PRODCAT_KAFKA_BOOTSTRAP": "k:9092",  # a setting
        "PRODCAT_STACK_KAFKA_PORT": "19092",  # deploy/local/stack's
        "PRODCAT_TEST_CLASSIFY_BUNDLE": "/b",  # the tests'
        "OTHER_VARIABLE": "x",
    }
    warnings = unknown_variables(setting_variables(), env)
    assert len(warnings) == 3, warnings
    assert any("did you mean PRODCAT_CLASSIFY_BATCH_MAX?" in w for w in warnings)
    assert any(
        "PRODCAT_REDIS_URI" in w and "did you mean PRODCAT_REDIS_URL?" in w for w in warnings
    )
    assert any(w.startswith("PRODCAT_WHATEVER_THING is not a prodcat setting") for w in warnings)


def test_main_warns_about_a_mistyped_variable(
    clean_env: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clean_env.chdir(tmp_path)  # no .env file here
    clean_env.setenv("PRODCAT_MODLE_BUNDLE", "/models/x")
    assert main(["predict", str(tmp_path / "products.csv")]) == 1  # no bundle given
    err = capsys.readouterr().err
    assert "PRODCAT_MODLE_BUNDLE is not a prodcat setting" in err
    assert "did you mean PRODCAT_MODEL_BUNDLE?" in err
