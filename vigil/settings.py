"""All configuration in one object, built once at start-up and passed down.

Sources, highest first: ``VIGIL_*`` environment variables, then the TOML file named
by ``VIGIL_CONFIG`` (default ``./vigil.toml`` when present), then defaults. Nested
sections read from ``VIGIL_<SECTION>_<FIELD>``, e.g. ``VIGIL_SLACK_BOT_TOKEN``.
Secrets are ``SecretStr``: printing settings never shows them.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import (
    BaseSettings,
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


class KafkaSettings(BaseModel):
    topic_prefix: str = ""
    partitions: int = Field(default=4, ge=1)
    batch_size: int = Field(default=500, ge=1)
    batch_within: float = Field(default=1.0, gt=0)
    group_id: str = "vigil"
    session_timeout: float = Field(default=30.0, ge=3)
    """Seconds before a silent worker's partitions move to the others."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="VIGIL_",
        env_nested_delimiter="_",
        env_nested_max_split=1,
        extra="forbid",
    )

    data_dir: Path = Path("vigil-data")
    keys_file: Path | None = None
    policies_dir: Path | None = None
    kafka_brokers: str = "127.0.0.1:9092"
    clickhouse_url: SecretStr | None = None
    max_event_bytes: int = Field(default=64 * 1024, ge=256)
    max_clock_skew_days: int = Field(default=30, ge=1)
    alert_min_severity: str = "medium"
    alert_repeat_seconds: float = Field(default=300.0, ge=0)
    log_level: str = "INFO"
    slack: SlackSettings = SlackSettings()
    kafka: KafkaSettings = KafkaSettings()

    @property
    def store_url(self) -> str:
        """Explicit URL, else the embedded store under ``data_dir``."""
        if self.clickhouse_url:
            return self.clickhouse_url.get_secret_value()
        return f"chdb://{(self.data_dir / 'clickhouse').resolve()}"

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
        toml_file = Path(os.environ.get("VIGIL_CONFIG", "vigil.toml"))
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if toml_file.is_file():
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        return tuple(sources)
