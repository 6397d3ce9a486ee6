"""The signing key registry (``VIGIL_KEYS_FILE``), format in docs/events.md.

A YAML file listing keys by ``key_id``. Each key names its algorithm, its key
material, the sources and principals it may speak for, and an optional validity
window, so rotation is two keys valid at once.

- ``hmac-sha256`` keys hold a shared ``secret`` (``SecretStr``: never in reprs or logs).
- ``ed25519`` keys hold only the producer's ``public_key``: the monitor never holds a
  secret that could forge events.

A key marked ``backfill: true`` may sign history: its events are not judged stale for
being old when they arrive (identity/verify.py); ``backfill_from``/``backfill_until``
bound when such arrivals are accepted. Every other check still applies to them.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal

import yaml
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    model_validator,
)

from schemas.problems import describe

_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's safe loader where PyYAML was built with it: a key file of many sources loads
about four times faster, at start-up and on every reload."""

Algorithm = Literal["hmac-sha256", "ed25519"]


class KeyringError(ValueError):
    """The key file is missing or malformed; the message names the file and the key."""


def decode_material(text: str) -> bytes:
    """Key material is written ``base64:...``, ``hex:...`` or as plain UTF-8 text."""
    try:
        if text.startswith("base64:"):
            return base64.b64decode(text[7:], validate=True)
        if text.startswith("hex:"):
            return bytes.fromhex(text[4:])
    except (binascii.Error, ValueError) as error:
        raise ValueError(f"key material is not valid {text.split(':', 1)[0]}") from error
    return text.encode()


def secret_bytes(secret: SecretStr) -> bytes:
    return decode_material(secret.get_secret_value())


def load_ed25519_public_key(text: str) -> Ed25519PublicKey:
    """PEM (``-----BEGIN PUBLIC KEY-----``) or the raw 32 bytes as ``base64:``/``hex:``."""
    if text.lstrip().startswith("-----BEGIN"):
        key = load_pem_public_key(text.encode())
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError("public_key is a PEM key but not an Ed25519 one")
        return key
    raw = decode_material(text)
    if len(raw) != 32:
        raise ValueError(f"an Ed25519 public key is 32 bytes, got {len(raw)}")
    return Ed25519PublicKey.from_public_bytes(raw)


class KeyEntry(BaseModel):
    """One key. ``matches`` checks a signature without exposing the key material."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key_id: str = Field(min_length=1)
    alg: Algorithm = "hmac-sha256"
    secret: SecretStr | None = None
    public_key: str | None = None
    sources: tuple[str, ...] = Field(min_length=1)
    principals: tuple[str, ...] = ("*",)
    not_before: AwareDatetime | None = None
    not_after: AwareDatetime | None = None
    backfill: bool = False
    """Events signed with this key may arrive long after their ``ts`` (a backfill of
    history): the freshness check is waived for them, nothing else. A separate key for
    the backfill job, so that a captured live event stays stale."""
    backfill_from: AwareDatetime | None = None
    backfill_until: AwareDatetime | None = None
    """When backfilled events may arrive (message time); outside it the key's events are
    judged fresh or stale like any other. Both optional."""

    _hmac_secret: bytes = PrivateAttr(default=b"")
    _ed25519: Ed25519PublicKey | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _material_fits_alg(self) -> KeyEntry:
        if self.alg == "hmac-sha256":
            if self.secret is None or self.public_key is not None:
                raise ValueError("an hmac-sha256 key needs `secret` (and no `public_key`)")
            self._hmac_secret = secret_bytes(self.secret)
            if len(self._hmac_secret) < 16:
                raise ValueError("secret must be at least 16 bytes")
        else:
            if self.public_key is None or self.secret is not None:
                raise ValueError("an ed25519 key needs `public_key` (and no `secret`)")
            self._ed25519 = load_ed25519_public_key(self.public_key)
        if self.not_before and self.not_after and self.not_after <= self.not_before:
            raise ValueError("not_after must be later than not_before")
        if not self.backfill and (self.backfill_from or self.backfill_until):
            raise ValueError("backfill_from and backfill_until need `backfill: true`")
        if self.backfill_from and self.backfill_until and self.backfill_until <= self.backfill_from:
            raise ValueError("backfill_until must be later than backfill_from")
        return self

    def valid_at(self, when: datetime) -> bool:
        if self.not_before is not None and when < self.not_before:
            return False
        return self.not_after is None or when <= self.not_after

    def may_backfill(self, arrival: datetime) -> bool:
        """Whether an event of this key arriving at ``arrival`` may be older than the skew."""
        if not self.backfill:
            return False
        if self.backfill_from is not None and arrival < self.backfill_from:
            return False
        return self.backfill_until is None or arrival <= self.backfill_until

    def speaks_for(self, principal_id: str) -> bool:
        # "*" (the default) matches every id: skip pattern matching on the per-event path.
        return "*" in self.principals or any(
            fnmatch.fnmatchcase(principal_id, pattern) for pattern in self.principals
        )

    def matches(self, canonical: bytes, value: str) -> bool:
        """Whether ``value`` (hex) is this key's signature over ``canonical``."""
        return signature_check(self)(canonical, value)


def signature_check(entry: KeyEntry) -> Callable[[bytes, str], bool]:
    """A closure over the key material: the per-event check reads no model attributes."""
    public_key = entry._ed25519
    secret = entry._hmac_secret
    new_hmac, compare = hmac.new, hmac.compare_digest

    if public_key is not None:
        verify = public_key.verify

        def check_ed25519(canonical: bytes, value: str) -> bool:
            try:
                verify(bytes.fromhex(value), canonical)
            except (InvalidSignature, ValueError):
                return False
            return True

        return check_ed25519

    def check_hmac(canonical: bytes, value: str) -> bool:
        return value.isascii() and compare(
            new_hmac(secret, canonical, hashlib.sha256).hexdigest(), value.lower()
        )

    return check_hmac


@dataclass(frozen=True)
class Keyring:
    entries: dict[str, KeyEntry] = field(default_factory=dict)
    _checks: dict[str, Callable[[bytes, str], bool]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Bound once: pydantic private attributes are slow to read on the per-event path.
        object.__setattr__(self, "_checks", {k: signature_check(e) for k, e in self.entries.items()})

    def get(self, key_id: str) -> KeyEntry | None:
        return self.entries.get(key_id)

    def check(self, key_id: str) -> Callable[[bytes, str], bool]:
        return self._checks[key_id]


class _KeyFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    keys: list[KeyEntry]


def load_keyring(path: Path) -> Keyring:
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_YAML_LOADER) or {}
        parsed = _KeyFile.model_validate(raw)
    except OSError as error:
        raise KeyringError(f"{path}: cannot read key file: {error.strerror}") from error
    except UnicodeDecodeError as error:
        raise KeyringError(f"{path}: key file is not UTF-8 text") from error
    except yaml.YAMLError as error:
        raise KeyringError(f"{path}: not valid YAML: {error}") from error
    except ValidationError as error:
        raise KeyringError(f"{path}: {describe(error)}") from error
    entries: dict[str, KeyEntry] = {}
    for entry in parsed.keys:
        if entry.key_id in entries:
            raise KeyringError(f"{path}: key_id {entry.key_id!r} appears twice")
        entries[entry.key_id] = entry
    return Keyring(entries)
