"""Signatures in the contract's form: HMAC-SHA256 (standard library) or Ed25519 (``cryptography``)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from typing import Any, Protocol

from vigil_client.canonical import canonical_bytes

MIN_SECRET_BYTES = 16
"""Vigil refuses shorter HMAC secrets in its key registry."""


class Signer(Protocol):
    """Signs canonical bytes under one key of Vigil's key registry."""

    key_id: str
    alg: str

    def signature_hex(self, canonical: bytes) -> str: ...


class HmacSigner:
    """HMAC-SHA256 with a secret shared with Vigil; the secret never appears in ``repr``."""

    alg = "hmac-sha256"

    def __init__(self, key_id: str, secret: bytes) -> None:
        if len(secret) < MIN_SECRET_BYTES:
            raise ValueError(f"an HMAC secret is at least {MIN_SECRET_BYTES} bytes (32 random recommended)")
        self.key_id = key_id
        self._secret = secret

    @classmethod
    def from_registry(cls, key_id: str, secret: str) -> HmacSigner:
        """The secret as the key registry writes it: ``hex:...``, ``base64:...`` or plain text."""
        return cls(key_id, decode_secret(secret))

    def __repr__(self) -> str:
        return f"HmacSigner(key_id={self.key_id!r})"

    def signature_hex(self, canonical: bytes) -> str:
        return hmac.new(self._secret, canonical, hashlib.sha256).hexdigest()


class Ed25519Signer:
    """Ed25519 with the producer's private key; Vigil holds only the public key."""

    alg = "ed25519"

    def __init__(self, key_id: str, private_key: Any) -> None:
        self.key_id = key_id
        self._key = private_key

    @classmethod
    def from_pem(cls, key_id: str, pem: bytes) -> Ed25519Signer:
        """A PEM (PKCS#8) Ed25519 private key, e.g. from ``openssl genpkey -algorithm ed25519``."""
        try:
            from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
            from cryptography.hazmat.primitives.serialization import load_pem_private_key
        except ImportError as error:
            raise ImportError("Ed25519 signing needs `pip install 'vigil-client[ed25519]'`") from error
        key = load_pem_private_key(pem, password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError("not an Ed25519 private key")
        return cls(key_id, key)

    def __repr__(self) -> str:
        return f"Ed25519Signer(key_id={self.key_id!r})"

    def signature_hex(self, canonical: bytes) -> str:
        signature: bytes = self._key.sign(canonical)
        return signature.hex()


def sign(document: Mapping[str, Any], signer: Signer) -> dict[str, Any]:
    """A copy of ``document`` with a ``signature`` member over its canonical form.

    Any ``signature`` already present is replaced: it is never part of what is signed.
    """
    value = signer.signature_hex(canonical_bytes(document))
    return {**document, "signature": {"alg": signer.alg, "key_id": signer.key_id, "value": value}}


def decode_secret(text: str) -> bytes:
    """Key material as Vigil's key registry writes it (``hex:``, ``base64:`` or UTF-8 text)."""
    try:
        if text.startswith("hex:"):
            return bytes.fromhex(text[4:])
        if text.startswith("base64:"):
            return base64.b64decode(text[7:], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"secret is not valid {text.split(':', 1)[0]}") from None
    return text.encode()
