# Longer than 400 lines: the one declaration of every setting (README's table is made from
# it); the checks and messages it uses live in workers/core/addresses.py and environment.py.
"""The one settings object for every prodcat process.

Values come from (highest wins): CLI flags, environment variables with the
``PRODCAT_`` prefix, a ``.env`` file, then the defaults below. Nested sections
use a single underscore after the section name, for example
``PRODCAT_KAFKA_BOOTSTRAP`` or ``PRODCAT_REDIS_URL``. Every field is listed in
the README's configuration table; ``tests/unit/core/test_settings.py`` keeps the two
in step.

Everything is checked when the settings load, before a process opens anything: the
address-like settings (Kafka bootstrap list, Redis URL, faust store URL, model store,
metrics bind address) by their form (:mod:`workers.core.addresses`). :func:`load_settings`
reports every bad value as a :class:`SettingsError` naming its environment variable
(``PRODCAT_CLASSIFY_BATCH_MAX``, not ``classify.batch_max``);
:func:`workers.core.environment.unknown_variables` names ``PRODCAT_*`` variables that are
no setting (a typo would otherwise be ignored) with the closest real name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from workers.core.addresses import (
    check_bind_host,
    check_bootstrap,
    check_log_level,
    check_model_store,
    check_redis_url,
    check_store_url,
)
from workers.core.environment import ENV_FILE, env_name, settings_problems
from workers.core.errors import ConfigError

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]


class SettingsError(ConfigError):
    """Settings that cannot be used; the message names each environment variable."""


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class KafkaSettings(_Section):
    """Connection to the Kafka cluster, shared by every client prodcat opens."""

    bootstrap: str = Field("127.0.0.1:9092", description="Comma-separated bootstrap servers.")
    client_id: str = Field("prodcat", description="Client id prefix sent to the broker.")
    security_protocol: SecurityProtocol = Field("PLAINTEXT", description="Kafka security protocol.")
    sasl_mechanism: str | None = Field(None, description="SASL mechanism, e.g. SCRAM-SHA-512.")
    sasl_username: str | None = Field(None, description="SASL user name.")
    sasl_password: SecretStr | None = Field(None, description="SASL password (secret).")
    ssl_ca_location: Path | None = Field(None, description="CA bundle for SSL.")
    ssl_certificate_location: Path | None = Field(None, description="Client certificate (PEM).")
    ssl_key_location: Path | None = Field(None, description="Client private key (PEM).")
    ssl_key_password: SecretStr | None = Field(None, description="Client key password (secret).")
    partitions: int = Field(6, ge=1, description="Partitions for topics prodcat creates.")
    replication_factor: int = Field(1, ge=1, description="Replication factor for created topics.")

    @field_validator("bootstrap")
    @classmethod
    def _bootstrap(cls, value: str) -> str:
        return check_bootstrap(value)

    def librdkafka(self) -> dict[str, Any]:
        """Connection keys in librdkafka (confluent-kafka) form. Contains secrets: never log it."""
        conf: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap,
            "security.protocol": self.security_protocol,
        }
        optional: dict[str, Any] = {
            "sasl.mechanism": self.sasl_mechanism,
            "sasl.username": self.sasl_username,
            "sasl.password": self.sasl_password.get_secret_value() if self.sasl_password else None,
            "ssl.ca.location": str(self.ssl_ca_location) if self.ssl_ca_location else None,
            "ssl.certificate.location": (
                str(self.ssl_certificate_location) if self.ssl_certificate_location else None
            ),
            "ssl.key.location": str(self.ssl_key_location) if self.ssl_key_location else None,
            "ssl.key.password": (
                self.ssl_key_password.get_secret_value() if self.ssl_key_password else None
            ),
        }
        conf.update({k: v for k, v in optional.items() if v is not None})
        return conf


class TopicSettings(_Section):
    """Topic names. The contracts behind them are described in ``schemas/README.md``."""

    product_created: str = Field("product.created", description="Input: new products.")
    product_updated: str = Field("product.updated", description="Input: changed products.")
    categorized: str = Field("product.categorized", description="Output: one event per input.")
    review: str = Field("product.review", description="Output: low-confidence items for people.")
    dead_letter: str = Field("prodcat.dead-letter", description="Bad input, with error headers.")
    feedback: str = Field("category.feedback", description="Corrections and user signals.")
    labels: str = Field("category.labels", description="Training labels from feedback.")
    models: str = Field("prodcat.models", description="Compacted control topic: live model.")
    query_models: str = Field(
        "prodcat.query-models", description="Compacted control topic: live query model."
    )
    clicks: str = Field("search.clicks", description="Input: search clicks and purchases.")
    query_labels: str = Field(
        "search.query-labels", description="Query training labels from clicks."
    )
    decisions: str = Field(
        "prodcat.decisions", description="Compacted: the canary controller's decisions."
    )


class RedisSettings(_Section):
    """The Redis used for the result cache and the override table."""

    url: str = Field("redis://127.0.0.1:6379/0", description="Redis URL (redis:// or rediss://).")
    password: SecretStr | None = Field(None, description="Redis AUTH password (secret).")
    username: str | None = Field(None, description="Redis ACL user name.")
    key_prefix: str = Field("prodcat", description="Prefix for every key prodcat writes.")
    cache_ttl_s: int = Field(7 * 24 * 3600, ge=1, description="TTL of cached results, seconds.")
    socket_timeout_s: float = Field(0.5, gt=0, description="Per-command timeout, seconds.")
    ssl_ca_certs: Path | None = Field(None, description="CA bundle for rediss:// URLs.")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return check_redis_url(value)

    def client_options(self) -> dict[str, Any]:
        """AUTH and TLS keyword arguments for ``redis.Redis.from_url`` (sync or asyncio).
        Contains the password: never log it."""
        options: dict[str, Any] = {}
        if self.password is not None:
            options["password"] = self.password.get_secret_value()
        if self.username is not None:
            options["username"] = self.username
        if self.ssl_ca_certs is not None and self.url.startswith("rediss://"):
            options["ssl_ca_certs"] = str(self.ssl_ca_certs)
        return options


class ModelSettings(_Section):
    """Where the model comes from and how its answers are used."""

    bundle: Path | None = Field(None, description="Local bundle directory to serve at start-up.")
    store: Path = Field(Path("var/models"), description="Model store root (versioned bundles).")
    top_k: int = Field(3, ge=1, le=20, description="Alternatives in each categorized event.")
    intra_op_threads: int = Field(1, ge=1, description="onnxruntime intra-op threads.")
    gate_metric: str = Field(
        "weighted_f1", description="Stored evaluation figure the promotion gate compares."
    )
    gate_tolerance: float = Field(
        0.01, ge=0, le=1, description="Largest drop of that figure a promotion may have."
    )

    @field_validator("store", mode="before")
    @classmethod
    def _store(cls, value: object) -> object:
        return check_model_store(value)


class MetricsSettings(_Section):
    """The embedded HTTP server for /metrics, /healthz and /readyz."""

    host: str = Field("127.0.0.1", description="Bind address of the metrics/health server.")
    port: int = Field(9108, ge=0, le=65535, description="Port; 0 disables the server.")

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        return check_bind_host(value)


class ServeSettings(_Section):
    """``prodcat serve``: the HTTP API (products, queries, taxonomy, Open Inference Protocol)."""

    host: str = Field("127.0.0.1", description="Bind address of the HTTP API.")
    port: int = Field(8080, ge=0, le=65535, description="Port of the HTTP API (0: any free one).")
    token: SecretStr | None = Field(
        None, description="Bearer token every API call must carry (secret); unset: no auth."
    )
    query_bundle: Path | None = Field(
        None, description="Local query bundle to serve when none is live (optional)."
    )
    query_top_k: int = Field(5, ge=1, le=20, description="Categories in each query answer.")
    max_body_bytes: int = Field(1 << 20, ge=1024, description="Largest request body, bytes.")
    max_items: int = Field(256, ge=1, description="Most products or queries per request.")
    request_timeout_ms: int = Field(
        2000, ge=1, description="A request not answered by then gets 503, ms."
    )
    batching: bool = Field(
        True, description="Classify concurrent requests' items in one model run."
    )
    batch_wait_ms: float = Field(
        1.0, ge=0, le=100, description="After a batch's first item, the longest wait for more, ms."
    )
    batch_max_items: int = Field(512, ge=1, description="Most items per model run.")
    cache: bool = Field(True, description="Look up overrides and cached product answers in Redis.")
    access_log: bool = Field(True, description="Log one line per request (prodcat.access).")

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        return check_bind_host(value)


class ClassifySettings(_Section):
    """The classify worker's loop."""

    group_id: str = Field("prodcat-classify", description="Consumer group of classify workers.")
    batch_max: int = Field(3000, ge=1, description="Most messages per batch.")
    batch_timeout_ms: int = Field(
        5, ge=1, description="After a batch's first message, the longest wait for more, ms."
    )
    overlap_min_batch: int = Field(
        1000,
        ge=1,
        description="Batches this large overlap their model run with the next batch.",
    )
    max_payload_bytes: int = Field(65536, ge=256, description="Larger messages are dead-lettered.")
    drain_timeout_s: float = Field(20.0, gt=0, description="SIGTERM drain budget, seconds.")
    exactly_once: bool = Field(False, description="Transactional producer, offsets in the txn.")
    max_in_flight: int = Field(20000, ge=1, description="Bound on unacknowledged outputs.")
    switch_interval_ms: float = Field(
        1.0, gt=0, le=100, description="Python's thread switch interval in the worker, ms."
    )


class FeedbackSettings(_Section):
    """The faust feedback app."""

    app_id: str = Field("prodcat-feedback", description="Faust app id (its consumer group).")
    trusted_sources: tuple[str, ...] = Field(
        ("moderator",), description="Sources whose correction is an override at once."
    )
    merchant_own_products: bool = Field(True, description="A merchant is trusted on own items.")
    user_threshold: int = Field(3, ge=1, description="Agreeing user reports that make an override.")
    new_categories: bool = Field(
        True,
        description="A trusted correction may name a category the live model lacks: it becomes "
        "an override and a training label, and the next retrain learns the category.",
    )
    acceptance_window_s: int = Field(7 * 24 * 3600, ge=1, description="Acceptance window, seconds.")
    acceptance_bucket_s: int = Field(
        3600, ge=1, description="Time bucket of the acceptance-rate counts, seconds."
    )
    unknown_grace_s: float = Field(
        300.0,
        gt=0,
        description="Seconds feedback for a not yet seen product stays parked before it is "
        "dead-lettered as UnknownProductError.",
    )
    session_timeout_s: float = Field(
        8.0,
        ge=6,
        le=300,
        description="Consumer-group session timeout of the app, seconds: how long the group "
        "waits for an instance that died without leaving (kill -9) before its partitions move.",
    )
    static_membership: bool = Field(
        False,
        description="Join the group as a static member named after the instance "
        "(group.instance.id): one restarted under the same name takes its partitions back "
        "at once, but one stopped for good holds them for the session timeout. For stable, "
        "unique instance names (a StatefulSet).",
    )
    redis_probe_interval_s: float = Field(
        1.0,
        gt=0,
        le=60,
        description="Seconds between checks that Redis answers and still holds the overrides.",
    )
    restore_rate: int = Field(
        5000,
        ge=1,
        description="Most overrides per second checked or written back when Redis is "
        "restored or reconciled from the tables.",
    )
    reconcile_interval_s: float = Field(
        600.0,
        ge=0,
        description="Seconds between full comparisons of the tables' overrides with Redis "
        "(missing or stale ones are rewritten); 0 turns them off.",
    )
    state_dir: Path = Field(Path("var/feedback"), description="Faust local state directory.")
    store: str = Field(
        "memory://", description="Faust table store URL (memory:// rebuilds from changelogs)."
    )

    @field_validator("store")
    @classmethod
    def _store(cls, value: str) -> str:
        return check_store_url(value)


class ClicksSettings(_Section):
    """``prodcat clicks``: the faust app that learns query categories from search clicks."""

    app_id: str = Field("prodcat-clicks", description="Faust app id (its consumer group).")
    half_life_s: float = Field(
        14 * 24 * 3600.0, gt=0, description="Half-life of a click's weight in a query's tally, s."
    )
    click_weight: float = Field(1.0, gt=0, description="Weight of a click.")
    cart_weight: float = Field(2.0, gt=0, description="Weight of an add-to-cart.")
    purchase_weight: float = Field(4.0, gt=0, description="Weight of a purchase.")
    min_weight: float = Field(
        3.0, gt=0, description="Decayed weight a query needs before it makes a label."
    )
    min_share: float = Field(
        0.6, gt=0, le=1, description="Share of that weight the top category needs for a label."
    )
    max_categories: int = Field(
        20, ge=1, description="Categories kept per query (the lightest are dropped)."
    )
    state_dir: Path = Field(Path("var/clicks"), description="Faust local state directory.")
    store: str = Field(
        "memory://", description="Faust table store URL (memory:// rebuilds from changelogs)."
    )


class RolloutSettings(_Section):
    """``prodcat models judge``: the canary controller (an always-valid sequential test)."""

    alpha: float = Field(
        0.05, gt=0, lt=1, description="Chance of each wrong verdict over a whole canary."
    )
    margin: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="Promote when the canary's acceptance rate is not below the live one's "
        "by more than this (0: only when it is higher).",
    )
    tau: float = Field(
        0.02, gt=0, description="Difference of acceptance rates the test is most sensitive to."
    )
    min_settled: int = Field(
        200, ge=1, description="Settled predictions each version needs before any verdict."
    )
    max_duration_s: float = Field(
        14 * 24 * 3600.0,
        gt=0,
        description="A canary without a verdict this long after it was set ends as timeout.",
    )
    interval_s: float = Field(60.0, gt=0, description="Seconds between two judgements.")


class Settings(BaseSettings):
    """Every setting of prodcat. Frozen: derive a new one with ``model_copy(update=...)``."""

    model_config = SettingsConfigDict(
        env_prefix="PRODCAT_",
        env_nested_delimiter="_",
        env_nested_max_split=1,
        env_file=ENV_FILE,
        extra="ignore",
        frozen=True,
    )

    data_dir: Path = Field(
        Path("../shared/data"), description="Root of the labelled catalogs (never committed)."
    )
    log_level: str = Field("INFO", description="Python log level.")
    log_json: bool = Field(False, description="Log one JSON object per line.")
    kafka: KafkaSettings = KafkaSettings()
    topics: TopicSettings = TopicSettings()
    redis: RedisSettings = RedisSettings()
    model: ModelSettings = ModelSettings()
    metrics: MetricsSettings = MetricsSettings()
    classify: ClassifySettings = ClassifySettings()
    serve: ServeSettings = ServeSettings()
    feedback: FeedbackSettings = FeedbackSettings()
    clicks: ClicksSettings = ClicksSettings()
    rollout: RolloutSettings = RolloutSettings()

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        return check_log_level(value)

    def with_overrides(self, **sections: Any) -> Settings:
        """A copy with some fields changed, e.g. ``with_overrides(kafka={"bootstrap": x})``.

        Values are validated again, so CLI flags get the same checks as env vars.
        """
        data = self.model_dump()
        for name, changes in sections.items():
            if isinstance(data.get(name), dict):
                data[name] = {**data[name], **changes}
            else:
                data[name] = changes
        return Settings.model_validate(data)


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment, then apply CLI-style overrides.

    Raises :class:`SettingsError` naming every bad value's environment variable (and,
    for a value given as a flag, saying so).
    """
    try:
        base = Settings()
    except ValidationError as exc:
        raise SettingsError(settings_problems(exc)) from None
    if not overrides:
        return base
    try:
        return base.with_overrides(**overrides)
    except ValidationError as exc:
        raise SettingsError(settings_problems(exc, flags=True)) from None


def setting_default(section: str | None, field: str) -> object:
    """A setting's default as declared here (not as the environment sets it)."""
    if section is None:
        return Settings.model_fields[field].default
    annotation = Settings.model_fields[section].annotation
    assert isinstance(annotation, type) and issubclass(annotation, _Section)
    return annotation.model_fields[field].default


def settings_rows() -> list[tuple[str, str, str]]:
    """(env var, default, description) for every setting, in declaration order."""
    rows: list[tuple[str, str, str]] = []
    for name, info in Settings.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, _Section):
            for sub, sub_info in annotation.model_fields.items():
                default = sub_info.default
                shown = "unset" if default is None else str(default)
                rows.append((env_name(name, sub), shown, sub_info.description or ""))
        else:
            rows.append((env_name(None, name), str(info.default), info.description or ""))
    return rows


def setting_variables() -> list[str]:
    """Every environment variable :class:`Settings` reads, in declaration order."""
    return [env for env, _, _ in settings_rows()]


def settings_markdown() -> str:
    """The README's configuration table (``python -m workers.core.settings``)."""
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    lines += [f"| `{env}` | `{default}` | {text} |" for env, default, text in settings_rows()]
    return "\n".join(lines)


if __name__ == "__main__":
    print(settings_markdown())  # noqa: T201
