"""Producer side of the signature: what ``vigil publish`` and service SDKs do."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from schemas.canonical import canonical_bytes


def hmac_hex(secret: bytes, canonical: bytes) -> str:
    return hmac.new(secret, canonical, hashlib.sha256).hexdigest()


def sign_document(document: dict[str, Any], key_id: str, secret: bytes) -> dict[str, Any]:
    """Return a copy of ``document`` with a ``signature`` over its canonical form."""
    value = hmac_hex(secret, canonical_bytes(document))
    return {**document, "signature": {"alg": "hmac-sha256", "key_id": key_id, "value": value}}
