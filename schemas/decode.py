"""Bytes in, exactly one of ``Decoded`` or ``Rejection`` out; no exception escapes.

Validation runs straight from the bytes (pydantic's JSON parser, about 5 µs for a
typical event), then the canonical form is built from the same bytes for the
signature check. Anything that fails becomes a ``Rejection`` carrying a stable
``code`` for analysts and a human ``reason`` naming the offending field.

A message with Kafka headers may be a CloudEvent (``schemas.envelopes``): it is mapped
onto the native event first. A native event without headers takes the path above
unchanged; trace context and GenAI attributes cost only the events that carry them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from schemas.canonical import canonical_of_parsed
from schemas.envelopes import (
    NO_TRACE,
    EnvelopeError,
    Headers,
    from_binary,
    from_structured,
    read_headers,
    with_gen_ai,
)
from schemas.events import EVENT_ADAPTER, Event, InferenceEvent, trace_ids

DEFAULT_MAX_BYTES = 64 * 1024
_MAX_REASON_ERRORS = 3

_CODE_BY_ERROR_TYPE = {
    "json_invalid": "invalid_json",
    "json_type": "invalid_json",
    "union_tag_invalid": "unknown_type",
    "union_tag_not_found": "missing_field",
    "missing": "missing_field",
    "extra_forbidden": "unknown_field",
}
_WRONG_TYPE_ERRORS = frozenset(
    {
        "dict_type",
        "model_type",
        "model_attributes_type",
        "bool_type",
        "int_type",
        "int_from_float",
        "float_type",
        "string_type",
        "list_type",
        "tuple_type",
        "datetime_type",
        "none_required",
    }
)
"""A field holds a value of another JSON type (``"principal": 42``, ``"mfa": "yes"``). For the
message itself (an empty location) the same errors mean the message is not an object."""
_UNION_TAGS = frozenset({"bool", "int", "constrained-int", "float", "str", "constrained-str", "none"})
_ESCAPE = re.compile(rb"\\(u[0-9a-fA-F]{4}|.)", re.DOTALL)
_UTF8_SURROGATE = re.compile(rb"\xed[\xa0-\xbf][\x80-\xbf]")


@dataclass(frozen=True, slots=True)
class Decoded:
    """A schema-valid event and the canonical bytes its signature must cover."""

    event: Event
    canonical: bytes
    trace_id: str = ""
    """W3C trace id (32 hex digits) of the call: the signed ``traceparent`` field, else the
    CloudEvent's ``traceparent``, else the Kafka ``traceparent`` header; "" without one."""
    span_id: str = ""


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a message could not become an event. ``code`` is one of a small fixed set."""

    code: str
    reason: str


def decode(
    raw: bytes, max_bytes: int = DEFAULT_MAX_BYTES, headers: Headers | None = None
) -> Decoded | Rejection:
    """Validate one message (with its Kafka headers, if any). Never raises for any input."""
    if len(raw) > max_bytes:
        return Rejection("oversize", f"message is {len(raw)} bytes, limit is {max_bytes}")
    if headers:
        return _decode_with_headers(raw, headers)
    try:
        event = EVENT_ADAPTER.validate_json(raw)
    except ValidationError as error:
        if b'"specversion"' in raw:  # a structured CloudEvent read from a file, without headers
            return _decode_cloudevent(raw, None)
        return _rejection_from(error, raw)
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        # pydantic's parser accepted it but a strict parser does not: the signature
        # could never be checked reproducibly.
        return Rejection("invalid_json", _surrogate_problem(raw) or f"not canonicalizable JSON: {error}")
    decoded = Decoded(event=event, canonical=canonical_of_parsed(document))
    if event.traceparent is not None or (event.__class__ is InferenceEvent and event.attributes is not None):
        return _enriched(decoded, NO_TRACE)
    return decoded


def _decode_with_headers(raw: bytes, headers: Headers) -> Decoded | Rejection:
    mode, header_trace = read_headers(headers)
    if mode is not None:
        return _decode_cloudevent(raw, headers if mode == "binary" else None, header_trace)
    decoded = decode(raw, len(raw))
    if isinstance(decoded, Rejection) or decoded.trace_id or not header_trace[0]:
        return decoded
    return Decoded(decoded.event, decoded.canonical, *header_trace)


def _decode_cloudevent(
    raw: bytes, binary_headers: Headers | None, header_trace: tuple[str, str] = NO_TRACE
) -> Decoded | Rejection:
    """A CloudEvent (binary when its headers are given, else structured) as the native
    event it carries; the canonical form is that native event's."""
    try:
        if binary_headers is None:
            document, traceparent = from_structured(raw)
        else:
            document, traceparent = from_binary(raw, binary_headers)
    except EnvelopeError as error:
        return Rejection(error.code, error.reason)
    body = orjson.dumps(document)
    try:
        event = EVENT_ADAPTER.validate_json(body)
    except ValidationError as error:
        return _rejection_from(error, body)
    envelope_trace = trace_ids(traceparent) if traceparent else None
    return _enriched(
        Decoded(event=event, canonical=canonical_of_parsed(document)), envelope_trace or header_trace
    )


def _enriched(decoded: Decoded, trace: tuple[str, str]) -> Decoded | Rejection:
    """``decoded`` with its trace ids (the signed field first) and its GenAI attributes mapped."""
    event = decoded.event
    if event.__class__ is InferenceEvent and event.attributes is not None:
        try:
            event = with_gen_ai(event)
        except ValueError as error:
            return Rejection("schema", str(error))
    if event.traceparent is not None:
        trace = trace_ids(event.traceparent) or trace
    return Decoded(event, decoded.canonical, *trace)


def _rejection_from(error: ValidationError, raw: bytes) -> Rejection:
    errors = error.errors(include_url=False, include_input=False)
    first_type = errors[0]["type"] if errors else "schema"
    if first_type == "json_invalid":
        surrogate = _surrogate_problem(raw)
        if surrogate is not None:  # the parser's own words ("end of hex escape") hide the cause
            return Rejection("invalid_json", surrogate)
    if first_type in _WRONG_TYPE_ERRORS:
        code = "wrong_type" if errors[0]["loc"] else "not_an_object"
    else:
        code = _CODE_BY_ERROR_TYPE.get(first_type, "schema")
    problems = _problems(errors)
    parts = [f"{where}: {what}" for where, what in problems[:_MAX_REASON_ERRORS]]
    if len(problems) > _MAX_REASON_ERRORS:
        parts.append(f"and {len(problems) - _MAX_REASON_ERRORS} more errors")
    return Rejection(code, "; ".join(parts))


def _problems(errors: list[ErrorDetails]) -> list[tuple[str, str]]:
    """(location, message) of each problem; a value that fits none of the types a field
    allows is one problem, not one per type (``features.a: Input should be a boolean,
    integer, number or string`` rather than four lines ending in ``.bool``, ``.float``...)."""
    problems: list[tuple[str, str]] = []
    last_union: tuple[Any, ...] | None = None
    for item in errors:
        loc, message = item["loc"], item["msg"]
        if item["type"] in _WRONG_TYPE_ERRORS and loc and _is_union_member(loc[-1]):
            where = ".".join(str(p) for p in loc[:-1])
            kind = message.removeprefix("Input should be a valid ").removeprefix("Input should be ")
            if last_union == loc[:-1]:
                where, expected = problems[-1]
                problems[-1] = (where, f"{expected}, {kind}")
            else:
                problems.append((where, f"Input should be {_article(kind)}"))
                last_union = loc[:-1]
            continue
        last_union = None
        problems.append((".".join(str(p) for p in loc) or "message", message))
    return [(where, _last_or(what)) for where, what in problems]


def _is_union_member(part: str | int) -> bool:
    """Whether a location part names a member of a union (pydantic's type tag), not a field."""
    return isinstance(part, str) and (
        part in _UNION_TAGS or part.startswith(("tuple[", "list[", "function-"))
    )


def _article(kind: str) -> str:
    return kind if kind.startswith(("a ", "an ")) else f"a {kind}"


def _last_or(text: str) -> str:
    """``a, b, c`` -> ``a, b or c``."""
    head, comma, tail = text.rpartition(", ")
    return f"{head} or {tail}" if comma else text


def _surrogate_problem(raw: bytes) -> str | None:
    """Where the message holds a lone UTF-16 surrogate, said so; else None.

    A surrogate escape (``\\ud800``) is text only as the first half of a pair; alone it
    is no character at all, and JSON parsers disagree on what to make of it. Escapes are
    read in order, so an escaped backslash followed by ``ud800`` is not mistaken for one.
    """
    previous_high: re.Match[bytes] | None = None
    for match in _ESCAPE.finditer(raw):
        escaped = match.group(1)
        code = int(escaped[1:], 16) if len(escaped) == 5 else -1  # u + 4 hex digits, else one character
        is_low = 0xDC00 <= code <= 0xDFFF
        if previous_high is not None and not (is_low and match.start() == previous_high.end()):
            return _lone(previous_high, raw)
        if is_low and previous_high is None:
            return _lone(match, raw)
        previous_high = match if 0xD800 <= code <= 0xDBFF else None
    if previous_high is not None:
        return _lone(previous_high, raw)
    encoded = _UTF8_SURROGATE.search(raw)
    if encoded is not None:
        return f"message: a UTF-16 surrogate encoded as UTF-8 at byte {encoded.start()} (not valid UTF-8)"
    return None


def _lone(match: re.Match[bytes], raw: bytes) -> str:
    line = raw.count(b"\n", 0, match.start()) + 1
    column = match.start() - (raw.rfind(b"\n", 0, match.start()) + 1) + 1
    escape = match.group().decode("ascii")
    return f"message: lone surrogate {escape} at line {line} column {column}: strings must be valid Unicode"
