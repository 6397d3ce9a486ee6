"""What a stored row keeps of a credential: its digest, never the credential.

A bearer token in an event, a rejected message or one of its headers would let
anyone who reads the store, the dead-letter topic or the audit ledger present it.
The digest replaces it and still links every use of the same token. The pipeline
and the decision API store payloads through :func:`stored_payload`; rejected
messages through :func:`without_tokens` and :func:`header_without_tokens`.
"""

from __future__ import annotations

import hashlib
import re

import orjson

from schemas.events import Event


def stored_payload(event: Event, canonical: bytes) -> str:
    """The canonical form, with a bearer token replaced by its digest.

    A token is a credential: anyone who can read the store could present it. The
    digest still links events that carried the same token.
    """
    if event.auth is None:
        return canonical.decode()
    document = orjson.loads(canonical)
    document["auth"]["token"] = redacted(event.auth.token.encode()).decode()
    return orjson.dumps(document, option=orjson.OPT_SORT_KEYS).decode()


_CREDENTIAL_HEADER = re.compile(r"authorization|token|secret|password|api[-_]?key", re.IGNORECASE)


def header_without_tokens(name: str, value: bytes | None) -> bytes | None:
    """A header kept with a rejected message: one named like a credential is replaced by
    its digest whole (``Bearer <opaque>`` has no shape to find), any other is searched
    for tokens as the message is."""
    if value is None:
        return None
    if _CREDENTIAL_HEADER.search(name):
        return redacted(value)
    return without_tokens(value)


_TOKEN_FIELD = re.compile(rb'("token"\s*:\s*")((?:[^"\\]|\\.)*)(")')
_JWT = re.compile(rb"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")


def redacted(token: bytes) -> bytes:
    """What a stored row keeps of a bearer token: its digest, which still links its uses."""
    return b"redacted:sha256:" + hashlib.sha256(token).hexdigest().encode()


def without_tokens(value: bytes) -> bytes:
    """The raw bytes of a rejected message with bearer tokens replaced by their digests.

    A rejected message is kept whole for forensics, but a token in it is still a
    credential, for whoever reads ``rejected`` or the dead-letter topic. Malformed
    input cannot be parsed, so tokens are found in the text: any ``"token": "..."``
    value, and anything shaped like a JWT elsewhere. ``size`` keeps the original length.
    """
    if b"token" not in value and b"eyJ" not in value:
        return value
    value = _TOKEN_FIELD.sub(lambda m: m.group(1) + redacted(m.group(2)) + m.group(3), value)
    return _JWT.sub(lambda m: redacted(m.group()), value)
