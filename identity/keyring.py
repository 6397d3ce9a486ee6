"""The signing key registry (``VIGIL_KEYS_FILE``), format in docs/events.md.

A YAML file listing keys by ``key_id``; each key names the sources it may speak for
and an optional validity window, so rotation is two keys valid at once. Secrets are
held as ``SecretStr`` and never appear in reprs or logs.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import yaml
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
)


class KeyringError(ValueError):
    """The key file is missing or malformed; the message names the file and the key."""


class KeyEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    key_id: str = Field(min_length=1)
    alg: str = "hmac-sha256"
    secret: SecretStr
    sources: tuple[str, ...] = Field(min_length=1)
    not_before: AwareDatetime | None = None
    not_after: AwareDatetime | None = None

    @field_validator("alg")
    @classmethod
    def _known_alg(cls, value: str) -> str:
        if value != "hmac-sha256":
            raise ValueError(f"unsupported alg {value!r} (supported: hmac-sha256)")
        return value

    @field_validator("secret")
    @classmethod
    def _long_enough(cls, value: SecretStr) -> SecretStr:
        if len(secret_bytes(value)) < 16:
            raise ValueError("secret must be at least 16 bytes")
        return value

    def valid_at(self, when: datetime) -> bool:
        if self.not_before is not None and when < self.not_before:
            return False
        return self.not_after is None or when <= self.not_after


def secret_bytes(secret: SecretStr) -> bytes:
    """Secrets are written ``base64:...``, ``hex:...`` or as plain UTF-8 text."""
    text = secret.get_secret_value()
    try:
        if text.startswith("base64:"):
            return base64.b64decode(text[7:], validate=True)
        if text.startswith("hex:"):
            return bytes.fromhex(text[4:])
    except (binascii.Error, ValueError) as error:
        raise ValueError(f"secret is not valid {text.split(':', 1)[0]}") from error
    return text.encode()


@dataclass(frozen=True)
class Keyring:
    """Keys by id, with their decoded secret bytes cached for the hot path."""

    entries: dict[str, KeyEntry]
    secrets: dict[str, bytes] = field(repr=False)

    def get(self, key_id: str) -> tuple[KeyEntry, bytes] | None:
        entry = self.entries.get(key_id)
        return None if entry is None else (entry, self.secrets[key_id])


class _KeyFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    keys: list[KeyEntry]


def load_keyring(path: Path) -> Keyring:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        parsed = _KeyFile.model_validate(raw)
    except OSError as error:
        raise KeyringError(f"{path}: cannot read key file: {error.strerror}") from error
    except UnicodeDecodeError as error:
        raise KeyringError(f"{path}: key file is not UTF-8 text") from error
    except yaml.YAMLError as error:
        raise KeyringError(f"{path}: not valid YAML: {error}") from error
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
            for e in error.errors(include_input=False, include_url=False)
        )
        raise KeyringError(f"{path}: {problems}") from error
    entries: dict[str, KeyEntry] = {}
    for entry in parsed.keys:
        if entry.key_id in entries:
            raise KeyringError(f"{path}: key_id {entry.key_id!r} appears twice")
        entries[entry.key_id] = entry
    return Keyring(entries, {k: secret_bytes(e.secret) for k, e in entries.items()})
