"""All configuration in one object, built once at start-up and passed down.

Sources, highest first: ``VIGIL_*`` environment variables, then the TOML file named
by ``VIGIL_CONFIG`` (default ``./vigil.toml`` when present), then defaults. Nested
sections read from ``VIGIL_<SECTION>_<FIELD>``, e.g. ``VIGIL_SLACK_BOT_TOKEN``.
Secrets are ``SecretStr``: printing settings never shows them.
"""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from audit.config import AuditSettings
from schemas import Severity


class SlackSettings(BaseModel):
    bot_token: SecretStr | None = None
    channel: str = "#vigil-alerts"
    webhook_url: SecretStr | None = None
    base_url: str = "https://slack.com/api/"
    timeout: float = 10.0

    @property
    def enabled(self) -> bool:
        return self.bot_token is not None or self.webhook_url is not None


class AlertingSettings(BaseModel):
    """Routing, grouping and delivery of alerts (docs/alerting.md)."""

    config: Path | None = None
    """Routing YAML; unset means the built-in route: console, plus Slack when configured."""
    state_dir: Path | None = None
    """The notifier's state database and CLI requests; default ``<data_dir>/alerting``."""
    max_pending: int = Field(default=10_000, ge=1)
    """Notifications owed per receiver before new ones are refused (and recorded)."""
    refresh_seconds: float = Field(default=5.0, gt=0)
    """How often silences, acknowledgements and the routing file are re-read."""
    close_timeout: float = Field(default=5.0, ge=0)
    """Seconds a stopping notifier keeps delivering what is owed; the rest waits in the state."""


class NotifierSettings(BaseModel):
    """``vigil notifier``: the consumer of ``ai.alerts`` (docs/alerting.md#the-notifier-service)."""

    group_id: str = "vigil-notifier"
    """Consumer group (and faust app id), after the topic prefix."""
    session_timeout: float = Field(default=10.0, ge=6)
    """Seconds before a dead notifier's partitions go to the standby that took over."""
    batch_size: int = Field(default=500, ge=1)
    batch_within: float = Field(default=0.1, gt=0)
    """Seconds the agent waits to fill a batch: part of every alert's latency to its receiver."""


class KafkaSettings(BaseModel):
    """The ingest worker's consumer group, batches and producers (docs/configuration.md#kafka)."""

    topic_prefix: str = ""
    partitions: int = Field(default=4, ge=1)
    batch_size: int = Field(default=2000, ge=1)
    """Most messages processed and stored as one batch (one ``consume`` call)."""
    batch_within: float = Field(default=0.5, gt=0)
    """Longest a worker gathers one batch; an idle pipeline takes what has arrived sooner."""
    group_id: str = "vigil"
    session_timeout: float = Field(default=30.0, ge=3)
    """Seconds before a silent worker's partitions move to the others."""
    max_poll_interval: float = Field(default=300.0, ge=10)
    """Seconds a worker may go without fetching (a stuck store) before it leaves the group."""
    fetch_max_bytes: int = Field(default=16 * 1024 * 1024, ge=1024 * 1024)
    """Bytes fetched ahead per broker request; the next batch is read while one is processed."""
    queued_max_kbytes: int = Field(default=65536, ge=1024)
    """Kibibytes of fetched messages the consumer buffers ahead of processing, in all."""
    delivery_timeout: float = Field(default=120.0, gt=0)
    """Seconds the producers keep retrying a dead letter, alert or checkpoint before the worker exits."""
    deadletter_max_bytes: int = Field(default=4 * 1024 * 1024, ge=1024 * 1024)
    """Largest dead letter (message plus headers); the dead-letter topic is created to accept it."""
    fix_timestamp_type: bool = True
    """Switch source topics that keep producer-set timestamps to LogAppendTime at start (else refuse)."""
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    """How every Kafka client of Vigil connects (docs/configuration.md#kafka-security)."""
    ssl_ca_file: Path | None = None
    """PEM file of the CAs that signed the brokers' certificates; unset: the system's."""
    ssl_cert_file: Path | None = None
    """PEM client certificate, for brokers that require mutual TLS (with ``ssl_key_file``)."""
    ssl_key_file: Path | None = None
    ssl_key_password: SecretStr | None = None
    ssl_check_hostname: bool = True
    """Check that a broker's certificate names the host connected to."""
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "SCRAM-SHA-512"
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None

    @model_validator(mode="after")
    def _complete_security(self) -> KafkaSettings:
        if self.security_protocol.startswith("SASL") and not (self.sasl_username and self.sasl_password):
            raise ValueError(
                f"kafka.security_protocol {self.security_protocol} needs kafka.sasl_username and "
                "kafka.sasl_password (VIGIL_KAFKA_SASL_USERNAME, VIGIL_KAFKA_SASL_PASSWORD)"
            )
        if (self.ssl_cert_file is None) != (self.ssl_key_file is None):
            raise ValueError("kafka.ssl_cert_file and kafka.ssl_key_file go together (mutual TLS)")
        return self


class MetricsSettings(BaseModel):
    """Prometheus metrics and health endpoints of long-running processes (docs/operations.md)."""

    port: int | None = Field(default=None, ge=0, le=65535)
    """Serve ``/metrics``, ``/healthz`` and ``/readyz`` on this port; unset: not served."""
    host: str = "127.0.0.1"
    """Address to listen on; ``0.0.0.0`` in a container, so Prometheus and probes reach it."""
    stall_seconds: float = Field(default=120.0, gt=0)
    """``/healthz`` fails once the processing loop has not come round for this long."""
    kafka_stats_seconds: float = Field(default=5.0, gt=0)
    """How often the consumer reports lag and fetch queue (librdkafka statistics)."""


def _comma_separated(cls: type, value: object) -> object:
    """Lists in environment variables: ``a,b`` or JSON ``["a","b"]``."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return tuple(json.loads(text))
        return tuple(v.strip() for v in text.split(",") if v.strip())
    return value


class IdentitySettings(BaseModel):
    """Bearer tokens (optional) and the freshness and replay rules every event meets."""

    jwks: str | None = None
    """Path or URL of the IdP's JWKS; unset means tokens are not checked."""
    jwt_issuer: str = ""
    jwt_audience: str = "vigil"
    jwt_algorithms: Annotated[tuple[str, ...], NoDecode] = ("RS256", "ES256", "EdDSA")
    jwt_leeway_seconds: float = Field(default=30.0, ge=0)
    jwt_roles_claim: str = "roles"
    max_skew_seconds: float = Field(default=300.0, gt=0)
    replay_window_hours: float = Field(default=24.0, gt=0)
    replay_max_mib: int = Field(default=256, ge=1)
    """Safety limit of the replay memory (8 bytes per event in the window); never reached
    at the intended rates, and logged as an error when it shortens the window."""

    _algorithms_list = field_validator("jwt_algorithms", mode="before")(_comma_separated)

    @model_validator(mode="after")
    def _issuer_with_jwks(self) -> IdentitySettings:
        if self.jwks and not self.jwt_issuer:
            raise ValueError("identity.jwks needs identity.jwt_issuer (VIGIL_IDENTITY_JWT_ISSUER)")
        return self


class PolicySettings(BaseModel):
    dir: Path | None = None
    """Policy bundle directory; default the packaged pack."""
    maturity: Annotated[tuple[str, ...], NoDecode] = ("stable",)
    inventory: Path | None = None
    """Inventory YAML; default ``<data_dir>/inventory.yaml`` when it exists."""
    reload_seconds: float = Field(default=5.0, gt=0)

    _maturity_list = field_validator("maturity", mode="before")(_comma_separated)


class DetectorsSettings(BaseModel):
    """The detect stage: per-model detector configuration and state checkpoints."""

    config: Path | None = None
    """YAML merged over the shipped ``detectors/defaults.yaml`` (docs/detectors.md)."""
    snapshot_seconds: float = Field(default=30.0, ge=0)
    """Kafka workers snapshot detector state per partition this often (0: never)."""
    snapshot_key: SecretStr | None = None
    """HMAC key of the snapshots, the same on every worker of a group; default a key
    generated once as ``<data_dir>/detector-snapshots.key`` (fine for one worker)."""


NOT_SETTINGS = (
    "VIGIL_CONFIG",
    "VIGIL_KAFKA_PORT",
    "VIGIL_KAFKA_HOME",
    "VIGIL_KAFKA_SSL_DIR",
    "VIGIL_PROMETHEUS_PORT",
    "VIGIL_ALERTMANAGER_PORT",
    "VIGIL_ALERTMANAGER_HOME",
)
"""``VIGIL_*`` variables read elsewhere: the config file's name, and the scripts that start
the local broker, Prometheus and Alertmanager (port, home, TLS material)."""


def beside_data_dir(data_dir: Path, purpose: str) -> Path:
    """``/var/lib/vigil`` -> ``/var/lib/vigil-<purpose>``: its own directory, next to the data."""
    resolved = data_dir.resolve()
    return resolved.with_name(f"{resolved.name}-{purpose}")


class QuerySettings(BaseModel):
    """The embedded store's read-only ClickHouse HTTP interface (docs/querying.md)."""

    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535)
    """0: any free port (written to ``<store>/query-endpoint.json``); fix it for Grafana or curl."""
    password: SecretStr | None = None
    """Password of the user ``vigil``; unset means a random one per start, in the endpoint file."""


class ApiSettings(BaseModel):
    """``vigil serve``: the decision API (docs/decision-api.md)."""

    host: str = "127.0.0.1"
    port: int = Field(default=8181, ge=0, le=65535)
    journal_dir: Path | None = None
    """Decisions not yet stored; default ``<data_dir>/api-journal``."""
    journal_fsync: bool = False
    """Flush each answer's record to disk before answering (survives power loss; slower)."""
    drain_grace_seconds: float = Field(default=10.0, ge=0)
    """On shutdown, how long to keep storing journaled decisions before leaving them for the next start."""
    recorder_nice: int = Field(default=10, ge=0, le=19)
    """CPU priority the recorder process gives up (``nice``): answers first, storing in the gaps."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="VIGIL_",
        env_nested_delimiter="_",
        env_nested_max_split=1,
        extra="forbid",
    )

    data_dir: Path = Path("vigil-data")
    keys_file: Path | None = None
    keys_dir: Path | None = None
    """Secrets Vigil creates for itself (the audit signing key); default ``<data_dir>-keys``
    beside the data directory, so that whoever holds the store does not hold the key."""
    kafka_brokers: str = "127.0.0.1:9092"
    clickhouse_url: SecretStr | None = None
    max_event_bytes: int = Field(default=64 * 1024, ge=256)
    max_clock_skew_days: int = Field(default=30, ge=1)
    alert_min_severity: Severity = "medium"
    alert_repeat_seconds: float = Field(default=4 * 3600.0, gt=0)
    """Seconds an alert fires unacknowledged before the built-in route reminds (``repeat_interval``)."""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "debug", "info", "warning", "error"] = "INFO"
    log_format: Literal["text", "json"] = "text"
    """``json``: one object per line with level, logger, message and context, for log collectors."""
    slack: SlackSettings = SlackSettings()
    alerting: AlertingSettings = AlertingSettings()
    notifier: NotifierSettings = NotifierSettings()
    kafka: KafkaSettings = KafkaSettings()
    audit: AuditSettings = AuditSettings()
    identity: IdentitySettings = IdentitySettings()
    policies: PolicySettings = PolicySettings()
    detectors: DetectorsSettings = DetectorsSettings()
    metrics: MetricsSettings = MetricsSettings()
    query: QuerySettings = QuerySettings()
    api: ApiSettings = ApiSettings()

    @classmethod
    def variables(cls) -> dict[str, str]:
        """Each setting by its environment variable: ``VIGIL_KAFKA_GROUP_ID`` -> ``kafka.group_id``."""
        found = {}
        for name, field_info in cls.model_fields.items():
            annotation = field_info.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                for sub in annotation.model_fields:
                    found[f"VIGIL_{name}_{sub}".upper()] = f"{name}.{sub}"
            else:
                found[f"VIGIL_{name}".upper()] = name
        return found

    @classmethod
    def unknown_environment(cls) -> list[str]:
        """``VIGIL_*`` variables no setting reads: almost always a typo worth a warning."""
        known = {*cls.variables(), *NOT_SETTINGS}
        return sorted(k for k in os.environ if k.startswith("VIGIL_") and k.upper() not in known)

    @property
    def store_url(self) -> str:
        """Explicit URL, else the embedded store under ``data_dir``."""
        if self.clickhouse_url:
            return self.clickhouse_url.get_secret_value()
        return f"chdb://{(self.data_dir / 'clickhouse').resolve()}"

    @property
    def inventory_path(self) -> Path | None:
        if self.policies.inventory is not None:
            return self.policies.inventory
        default = self.data_dir / "inventory.yaml"
        return default if default.exists() else None

    @property
    def keys_directory(self) -> Path:
        return self.keys_dir or beside_data_dir(self.data_dir, "keys")

    @property
    def checkpoints_directory(self) -> Path:
        """Default home of exported audit checkpoints (``audit.export_dir`` overrides it)."""
        return beside_data_dir(self.data_dir, "checkpoints")

    @property
    def keys_path(self) -> Path:
        return self.keys_file or self.data_dir / "keys.yaml"

    @property
    def embedded(self) -> bool:
        return self.store_url.startswith("chdb://")

    def topic(self, name: str) -> str:
        return f"{self.kafka.topic_prefix}{name}"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        toml_file = config_file()
        if toml_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        return tuple(sources)


class InvalidSettingsError(ValueError):
    """The settings cannot be loaded; the message is one line naming the setting and the way out."""


def config_file() -> Path | None:
    """The TOML file to read: ``VIGIL_CONFIG``, else ``./vigil.toml`` when it exists."""
    named = os.environ.get("VIGIL_CONFIG")
    if named:
        if not Path(named).is_file():
            raise InvalidSettingsError(f"VIGIL_CONFIG names {named}, which does not exist; fix or unset it")
        return Path(named)
    default = Path("vigil.toml")
    return default if default.is_file() else None


def load_settings() -> Settings:
    """The settings every command starts from: environment over the TOML file over defaults.

    The one loader: any problem becomes a :class:`InvalidSettingsError` that names where the bad
    value came from, rather than a pydantic or TOML traceback.
    """
    try:
        return Settings()
    except tomllib.TOMLDecodeError as error:
        raise InvalidSettingsError(
            f"{config_file()}: not valid TOML ({error}); fix it or point VIGIL_CONFIG at another file"
        ) from None
    except ValidationError as error:
        raise InvalidSettingsError(_describe(error)) from None


def _describe(error: ValidationError) -> str:
    """``kafka.batch_size (VIGIL_KAFKA_BATCH_SIZE): ...`` for each problem, on one line."""
    problems = []
    for found in error.errors():
        where = ".".join(str(part) for part in found["loc"])
        variable = "VIGIL_" + "_".join(str(part) for part in found["loc"][:2]).upper()
        cause = found.get("ctx", {}).get("error") if found["type"] == "value_error" else None
        if found["type"] == "extra_forbidden":
            problems.append(f"{where} is not a Vigil setting")
        else:
            named = f" ({variable})" if variable in Settings.variables() else ""
            problems.append(f"{where}{named}: {cause or found['msg']}")
    source = config_file()
    origin = f"the environment or {source}" if source else "the environment"
    return f"invalid settings in {origin}: {'; '.join(problems)} (see docs/configuration.md)"
