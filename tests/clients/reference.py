"""Vigil's own verdict on a message a client produced: decode it, then verify its signature."""

from __future__ import annotations

import json
from typing import Any

from pydantic import SecretStr

from identity.keyring import KeyEntry, Keyring
from identity.verify import verify
from schemas.decode import Decoded, decode
from tests.clients.vectors import VECTORS_PATH

SOURCES = ("data-portal", "checkout-api", "ml-platform", "labeling")


def load_vectors() -> dict[str, Any]:
    vectors: dict[str, Any] = json.loads(VECTORS_PATH.read_text(encoding="utf-8"))
    return vectors


def vector_keyring(ed25519_public_pem: str | None = None) -> Keyring:
    """The vectors' HMAC key (and an Ed25519 key, if given) for every source the vectors use."""
    vectors = load_vectors()
    entries = {
        vectors["key_id"]: KeyEntry(
            key_id=vectors["key_id"], secret=SecretStr("hex:" + vectors["secret_hex"]), sources=SOURCES
        )
    }
    if ed25519_public_pem is not None:
        entries["test-ed25519"] = KeyEntry(
            key_id="test-ed25519", alg="ed25519", public_key=ed25519_public_pem, sources=SOURCES
        )
    return Keyring(entries)


def vigil_verdict(message: bytes, keyring: Keyring) -> tuple[str, bytes]:
    """``verify_reason`` Vigil gives the message (``ok`` when verified) and its canonical form."""
    decoded = decode(message)
    assert isinstance(decoded, Decoded), f"Vigil rejects the message: {decoded}"
    return verify(decoded.event, decoded.canonical, keyring).reason, decoded.canonical
