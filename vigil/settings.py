"""All configuration in one object, built once at start-up and passed down.

Sources, highest first: ``VIGIL_*`` environment variables, then the TOML file named
by ``VIGIL_CONFIG`` (default ``./vigil.toml`` when present), then defaults. Nested
sections read from ``VIGIL_<SECTION>_<FIELD>``, e.g. ``VIGIL_SLACK_BOT_TOKEN``.
Secrets are ``SecretStr``: printing settings never shows them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


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
    """Outbox journals, intake spill and CLI requests; default ``<data_dir>/alerting``."""
    queue_size: int = Field(default=10_000, ge=1)
    max_pending: int = Field(default=10_000, ge=1)
    """Notifications owed per receiver before new ones are refused (and recorded)."""
    refresh_seconds: float = Field(default=5.0, gt=0)
    """How often silences, acknowledgements and the routing file are re-read."""
    close_timeout: float = Field(default=10.0, ge=0)


class KafkaSettings(BaseModel):
    """The ingest worker's consumer group, batches and producers (docs/configuration.md#kafka)."""

    topic_prefix: str = ""
    partitions: int = Field(default=4, ge=1)
    batch_size: int = Field(default=2000, ge=1)
    """Most messages processed and stored as one batch (one ``consume`` call)."""
    batch_within: float = Field(default=0.5, gt=0)
    """Seconds a worker waits to fill a batch before processing what it has."""
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
    """Safety limit of the replay memory (12 bytes per event in the window); never reached
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


class AuditSettings(BaseModel):
    """The tamper-evident audit ledger: who signs its checkpoints, how often, where copies go."""

    signing_key_file: Path | None = None
    """Ed25519 private key (PEM); default ``<data_dir>/audit-signing.key``, created with mode
    0600 on first start, its public key written beside it as ``audit-signing.pub``."""
    export_dir: Path | None = None
    """Where signed checkpoints are copied as JSON files; default ``<data_dir>/audit-checkpoints``."""
    checkpoint_entries: int = Field(default=1000, ge=1)
    """Sign a checkpoint of a stream once this many entries are not yet covered..."""
    checkpoint_seconds: float = Field(default=60.0, gt=0)
    """...or once its oldest uncovered entry is this many seconds old."""


class DetectorsSettings(BaseModel):
    """The detect stage: per-model detector configuration and state checkpoints."""

    config: Path | None = None
    """YAML merged over the shipped ``detectors/defaults.yaml`` (docs/detectors.md)."""
    snapshot_seconds: float = Field(default=30.0, ge=0)
    """Kafka workers snapshot detector state per partition this often (0: never)."""
    snapshot_key: SecretStr | None = None
    """HMAC key of the snapshots, the same on every worker of a group; default a key
    generated once as ``<data_dir>/detector-snapshots.key`` (fine for one worker)."""


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


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="VIGIL_",
        env_nested_delimiter="_",
        env_nested_max_split=1,
        extra="forbid",
    )

    data_dir: Path = Path("vigil-data")
    keys_file: Path | None = None
    kafka_brokers: str = "127.0.0.1:9092"
    clickhouse_url: SecretStr | None = None
    max_event_bytes: int = Field(default=64 * 1024, ge=256)
    max_clock_skew_days: int = Field(default=30, ge=1)
    alert_min_severity: Literal["info", "low", "medium", "high", "critical"] = "medium"
    alert_repeat_seconds: float = Field(default=300.0, ge=0)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "debug", "info", "warning", "error"] = "INFO"
    log_format: Literal["text", "json"] = "text"
    """``json``: one object per line with level, logger, message and context, for log collectors."""
    slack: SlackSettings = SlackSettings()
    alerting: AlertingSettings = AlertingSettings()
    kafka: KafkaSettings = KafkaSettings()
    audit: AuditSettings = AuditSettings()
    identity: IdentitySettings = IdentitySettings()
    policies: PolicySettings = PolicySettings()
    detectors: DetectorsSettings = DetectorsSettings()
    api: ApiSettings = ApiSettings()

    @classmethod
    def unknown_environment(cls) -> list[str]:
        """``VIGIL_*`` variables no setting reads: almost always a typo worth a warning."""
        known = {"VIGIL_CONFIG", "VIGIL_KAFKA_PORT", "VIGIL_KAFKA_HOME"}
        for name, field_info in cls.model_fields.items():
            prefix = f"VIGIL_{name.upper()}"
            annotation = field_info.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                known.update(f"{prefix}_{sub.upper()}" for sub in annotation.model_fields)
            else:
                known.add(prefix)
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
        named = os.environ.get("VIGIL_CONFIG")
        toml_file = Path(named or "vigil.toml")
        if named and not toml_file.is_file():
            raise FileNotFoundError(f"VIGIL_CONFIG names {toml_file}, which does not exist")
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if toml_file.is_file():
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        return tuple(sources)
