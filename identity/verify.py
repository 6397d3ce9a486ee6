"""Verify who sent an event. Every event gets a ``Verdict``; none is exempt.

Checks, in order: a signature is present, its key is known, the key may speak for
the event's ``source``, the key was valid at the event's time, and the HMAC matches
(compared in constant time). The first failing check names the reason.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from identity.keyring import Keyring
from identity.signing import hmac_hex
from schemas.events import Event


@dataclass(frozen=True, slots=True)
class Verdict:
    verified: bool
    reason: str
    key_id: str = ""


def verify(event: Event, canonical: bytes, keyring: Keyring) -> Verdict:
    signature = event.signature
    if signature is None:
        return Verdict(False, "unsigned")
    found = keyring.get(signature.key_id)
    if found is None:
        return Verdict(False, "unknown_key", signature.key_id)
    entry, secret = found
    if event.source not in entry.sources:
        return Verdict(False, "key_not_for_source", signature.key_id)
    if not entry.valid_at(event.ts):
        return Verdict(False, "key_expired", signature.key_id)
    expected = hmac_hex(secret, canonical)
    if not hmac.compare_digest(expected, signature.value.lower()):
        return Verdict(False, "bad_signature", signature.key_id)
    return Verdict(True, "ok", signature.key_id)
