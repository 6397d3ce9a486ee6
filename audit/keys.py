"""The Ed25519 key that signs checkpoints, and the public keys auditors trust.

The private key lives in one PEM file readable only by its owner; it is created on
first start so a fresh installation is never unsigned. The public key is written
beside it (``.pub``) for publishing: auditors pin that file, not the one on the
server, since whoever can replace the server's copy could also sign forgeries.
A key is named by its id, the first 16 hex digits of SHA-256 over its raw bytes,
which every checkpoint carries so a rotated key still verifies old checkpoints.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import stat
from collections.abc import Iterable
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

log = logging.getLogger(__name__)


class AuditKeyError(RuntimeError):
    """A key file is missing, unreadable or not an Ed25519 key."""


def key_id_of(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_pem(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def public_key_path(signing_key_path: Path) -> Path:
    return signing_key_path.with_suffix(".pub")


class Signer:
    """Signs checkpoint messages; the private key never leaves this object."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._private_key = private_key
        self.public_key = private_key.public_key()
        self.key_id = key_id_of(self.public_key)

    def sign(self, message: bytes) -> str:
        return base64.b64encode(self._private_key.sign(message)).decode()

    def __repr__(self) -> str:
        return f"Signer(key_id={self.key_id!r})"


class TrustedKeys:
    """Public keys by key id; a signature verifies only under the key its checkpoint names."""

    def __init__(self, keys: Iterable[Ed25519PublicKey]) -> None:
        self.by_id = {key_id_of(k): k for k in keys}

    def verify(self, key_id: str, message: bytes, signature: str) -> bool:
        key = self.by_id.get(key_id)
        if key is None:
            return False
        try:
            key.verify(base64.b64decode(signature, validate=True), message)
        except (InvalidSignature, ValueError):
            return False
        return True

    def __bool__(self) -> bool:
        return bool(self.by_id)


def load_or_create_signer(path: Path, published: Path | None = None) -> Signer:
    """Load the signing key, creating it (mode 0600) on first start, and publish its public key
    at ``published`` (default the ``.pub`` beside it)."""
    if not path.exists():
        _create(path)
    if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("audit signing key %s is accessible to other users; chmod 600 it", path)
    try:
        private_key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as error:
        raise AuditKeyError(f"{path}: not a readable unencrypted PEM private key ({error})") from error
    if not isinstance(private_key, Ed25519PrivateKey):
        raise AuditKeyError(f"{path}: the audit signing key must be Ed25519")
    signer = Signer(private_key)
    _publish(published or public_key_path(path), signer.public_key)
    return signer


def _create(path: Path) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return  # another process created it first; use theirs
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(pem)
    log.info("created audit signing key %s", path)


def _publish(path: Path, public_key: Ed25519PublicKey) -> None:
    pem = public_pem(public_key)
    if path.exists() and path.read_bytes() == pem:
        return
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_bytes(pem)
    temporary.chmod(0o644)
    temporary.replace(path)


def load_public_keys(paths: Iterable[Path]) -> TrustedKeys:
    keys = []
    for path in paths:
        try:
            key = serialization.load_pem_public_key(path.read_bytes())
        except (OSError, ValueError) as error:
            raise AuditKeyError(f"{path}: not a readable PEM public key ({error})") from error
        if not isinstance(key, Ed25519PublicKey):
            raise AuditKeyError(f"{path}: audit public keys are Ed25519")
        keys.append(key)
    return TrustedKeys(keys)
