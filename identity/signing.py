"""Producer side of the signature: what ``vigil publish`` and service SDKs do."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from schemas.canonical import canonical_bytes


def hmac_hex(secret: bytes, canonical: bytes) -> str:
    return hmac.new(secret, canonical, hashlib.sha256).hexdigest()


class Signer(Protocol):
    key_id: str

    def sign(self, document: dict[str, Any]) -> dict[str, Any]: ...


class HmacSigner:
    def __init__(self, key_id: str, secret: bytes) -> None:
        self.key_id = key_id
        self._secret = secret

    def __repr__(self) -> str:
        return f"HmacSigner(key_id={self.key_id!r})"

    def sign(self, document: dict[str, Any]) -> dict[str, Any]:
        return sign_document(document, self.key_id, self._secret)


class Ed25519Signer:
    """Holds the producer's private key; the monitor only ever sees the public half."""

    def __init__(self, key_id: str, private_key: Ed25519PrivateKey) -> None:
        self.key_id = key_id
        self._key = private_key

    def __repr__(self) -> str:
        return f"Ed25519Signer(key_id={self.key_id!r})"

    def sign(self, document: dict[str, Any]) -> dict[str, Any]:
        value = self._key.sign(canonical_bytes(document)).hex()
        return {**document, "signature": {"alg": "ed25519", "key_id": self.key_id, "value": value}}


def sign_document(document: dict[str, Any], key_id: str, secret: bytes) -> dict[str, Any]:
    """Return a copy of ``document`` with an HMAC-SHA256 signature over its canonical form."""
    value = hmac_hex(secret, canonical_bytes(document))
    return {**document, "signature": {"alg": "hmac-sha256", "key_id": key_id, "value": value}}
