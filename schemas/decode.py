"""Bytes in, exactly one of ``Decoded`` or ``Rejection`` out; no exception escapes.

Validation runs straight from the bytes (pydantic's JSON parser, about 5 µs for a
typical event), then the canonical form is built from the same bytes for the
signature check. Anything that fails becomes a ``Rejection`` carrying a stable
``code`` for analysts and a human ``reason`` naming the offending field.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson
from pydantic import ValidationError

from schemas.canonical import canonical_of_parsed
from schemas.events import EVENT_ADAPTER, Event

DEFAULT_MAX_BYTES = 64 * 1024
_MAX_REASON_ERRORS = 3

_CODE_BY_ERROR_TYPE = {
    "json_invalid": "invalid_json",
    "json_type": "invalid_json",
    "dict_type": "not_an_object",
    "model_type": "not_an_object",
    "model_attributes_type": "not_an_object",
    "union_tag_invalid": "unknown_type",
    "union_tag_not_found": "missing_field",
    "missing": "missing_field",
    "extra_forbidden": "unknown_field",
}


@dataclass(frozen=True, slots=True)
class Decoded:
    """A schema-valid event and the canonical bytes its signature must cover."""

    event: Event
    canonical: bytes


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a message could not become an event. ``code`` is one of a small fixed set."""

    code: str
    reason: str


def decode(raw: bytes, max_bytes: int = DEFAULT_MAX_BYTES) -> Decoded | Rejection:
    """Validate one message. Never raises for any input bytes."""
    if len(raw) > max_bytes:
        return Rejection("oversize", f"message is {len(raw)} bytes, limit is {max_bytes}")
    try:
        event = EVENT_ADAPTER.validate_json(raw)
    except ValidationError as error:
        return _rejection_from(error)
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        # pydantic's parser accepted it but a strict parser does not (e.g. lone
        # surrogates): the signature could never be checked reproducibly.
        return Rejection("invalid_json", f"not canonicalizable JSON: {error}")
    return Decoded(event=event, canonical=canonical_of_parsed(document))


def _rejection_from(error: ValidationError) -> Rejection:
    errors = error.errors(include_url=False, include_input=False)
    first_type = errors[0]["type"] if errors else "schema"
    code = _CODE_BY_ERROR_TYPE.get(first_type, "schema")
    parts = []
    for item in errors[:_MAX_REASON_ERRORS]:
        where = ".".join(str(p) for p in item["loc"]) or "message"
        parts.append(f"{where}: {item['msg']}")
    if len(errors) > _MAX_REASON_ERRORS:
        parts.append(f"and {len(errors) - _MAX_REASON_ERRORS} more errors")
    return Rejection(code, "; ".join(parts))
