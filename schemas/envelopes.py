"""Standard envelopes around the contract: CloudEvents over Kafka, W3C trace context and
OpenTelemetry GenAI attributes (docs/events.md, "Envelopes").

A CloudEvent is mapped onto the native event it carries: its ``id``, ``source``, ``time``
and ``type`` become ``event_id``, ``source``, ``ts`` and ``type``, its ``data`` supplies
every other member. The signature is the native one, over the canonical form of that
mapped event, so a producer signs exactly what it would sign without the envelope and the
envelope's own attributes are covered wherever they carry contract fields. Attributes the
contract has no field for (``subject``, ``dataschema``, extensions other than
``traceparent``) are not signed and not kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from schemas.events import GenAiAttributes, InferenceEvent, TokenUsage, trace_ids

Headers = Sequence[tuple[str, bytes | None]]
"""Kafka record headers as confluent-kafka returns them: (name, value or None), in order."""

CLOUDEVENTS_CONTENT_TYPE = "application/cloudevents+json"
SPECVERSION = "1.0"
TYPE_PREFIX = "vigil."
"""CloudEvents ``type`` of each event type: ``vigil.inference``, ``vigil.feedback``, ..."""
EVENT_TYPES = ("inference", "feedback", "training", "access")
LIFTED = (("id", "event_id"), ("source", "source"), ("time", "ts"))
"""CloudEvents attributes that carry contract fields, with the field each fills."""
BINARY_PREFIX = "ce_"

NO_TRACE = ("", "")


class EnvelopeError(ValueError):
    """A CloudEvent the contract cannot take: ``code`` is the rejection code."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def read_headers(headers: Headers) -> tuple[str | None, tuple[str, str]]:
    """The CloudEvents mode the headers announce (``structured``, ``binary`` or None) and the
    (trace id, span id) of a ``traceparent`` header, in one pass (Kafka header names are
    case-sensitive; the last of a repeated header counts).

    Structured mode is ``content-type: application/cloudevents+json`` (parameters such as
    ``charset`` allowed); binary mode has the attributes as ``ce_*`` headers, among them
    ``ce_specversion``.
    """
    content_type = specversion = traceparent = None
    for key, value in headers:
        if key == "content-type":
            content_type = value
        elif key == "ce_specversion":
            specversion = value
        elif key == "traceparent":
            traceparent = value
    mode = None
    if content_type is not None and _media_type(content_type) == CLOUDEVENTS_CONTENT_TYPE:
        mode = "structured"
    elif specversion is not None:
        mode = "binary"
    return mode, _trace_of(traceparent)


def _trace_of(traceparent: bytes | None) -> tuple[str, str]:
    """An invalid ``traceparent`` header is ignored, as W3C Trace Context asks of a receiver,
    rather than costing the event."""
    if traceparent is None:
        return NO_TRACE
    try:
        return trace_ids(traceparent.decode("ascii")) or NO_TRACE
    except UnicodeDecodeError:
        return NO_TRACE


def from_structured(raw: bytes) -> tuple[dict[str, Any], str]:
    """The native document a structured-mode CloudEvent carries, and its ``traceparent``."""
    try:
        envelope = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise EnvelopeError("invalid_json", f"message: not a JSON CloudEvent: {error}") from error
    if not isinstance(envelope, dict):
        raise EnvelopeError("not_an_object", "message: a structured CloudEvent is a JSON object")
    if "data_base64" in envelope:
        raise EnvelopeError("invalid_envelope", "cloudevent.data_base64: data must be a JSON object")
    attributes = {k: v for k, v in envelope.items() if k != "data"}
    return _native(attributes, envelope.get("data"), "cloudevent")


def from_binary(raw: bytes, headers: Headers) -> tuple[dict[str, Any], str]:
    """The native document a binary-mode CloudEvent carries: attributes from ``ce_*``
    headers, ``content-type`` as ``datacontenttype``, the message value as ``data``."""
    attributes: dict[str, Any] = {}
    for key, value in headers:
        name = key[len(BINARY_PREFIX) :] if key.startswith(BINARY_PREFIX) else None
        if key == "content-type":
            name = "datacontenttype"
        if name is None or value is None:
            continue
        try:
            attributes[name] = value.decode("utf-8")
        except UnicodeDecodeError as error:
            raise EnvelopeError("invalid_envelope", f"header {key}: not UTF-8 text") from error
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise EnvelopeError("invalid_json", f"message: CloudEvent data is not JSON: {error}") from error
    return _native(attributes, data, "header ce_")


def _native(attributes: dict[str, Any], data: Any, where: str) -> tuple[dict[str, Any], str]:
    def at(name: str) -> str:
        return f"{where}{name}" if where.endswith("_") else f"{where}.{name}"

    if attributes.get("specversion") != SPECVERSION:
        raise EnvelopeError(
            "invalid_envelope",
            f"{at('specversion')}: must be {SPECVERSION!r}, got {attributes.get('specversion')!r}",
        )
    content_type = attributes.get("datacontenttype")
    if content_type is not None and not _is_json(str(content_type)):
        raise EnvelopeError(
            "invalid_envelope", f"{at('datacontenttype')}: must be JSON, got {content_type!r}"
        )
    if not isinstance(data, dict):
        where_data = "message" if where.endswith("_") else at("data")  # binary: the value is the data
        raise EnvelopeError(
            "invalid_envelope", f"{where_data}: CloudEvent data must be a JSON object (the event)"
        )
    kind = attributes.get("type")
    if (
        not isinstance(kind, str)
        or not kind.startswith(TYPE_PREFIX)
        or kind[len(TYPE_PREFIX) :] not in EVENT_TYPES
    ):
        raise EnvelopeError(
            "unknown_type",
            f"{at('type')}: {kind!r} is not one of {', '.join(TYPE_PREFIX + t for t in EVENT_TYPES)}",
        )
    document = dict(data)
    for attribute, field_name in (*LIFTED, ("type", "type")):
        value = kind.removeprefix(TYPE_PREFIX) if attribute == "type" else attributes.get(attribute)
        if value is None:
            continue
        if field_name in document and document[field_name] != value:
            raise EnvelopeError(
                "invalid_envelope",
                f"{at(attribute)}: {value!r} differs from data.{field_name} {document[field_name]!r}",
            )
        document[field_name] = value
    traceparent = attributes.get("traceparent")
    return document, traceparent if isinstance(traceparent, str) else ""


def _media_type(value: bytes) -> str:
    return value.split(b";", 1)[0].strip().decode("latin-1").lower()


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def with_gen_ai(event: InferenceEvent) -> InferenceEvent:
    """``event`` with its OpenTelemetry GenAI attributes mapped onto the fields detectors read
    (OpenInference's names stand in where the GenAI ones are absent).

    Token usage becomes ``tokens`` (the operations monitors follow it); numeric request
    parameters become numeric features and the provider and model names categorical
    features, named by their attribute, so a changed temperature or a model swapped behind
    an endpoint shows as feature drift. A feature the event already names keeps its value.
    ``tokens`` sent beside usage attributes must agree with them.
    """
    attributes = event.attributes
    assert attributes is not None
    prompt = _first(attributes.input_tokens, attributes.prompt_tokens, attributes.openinference_prompt_tokens)
    completion = _first(
        attributes.output_tokens, attributes.completion_tokens, attributes.openinference_completion_tokens
    )
    tokens = event.tokens
    if prompt is not None or completion is not None:
        usage = TokenUsage(
            prompt=prompt if prompt is not None else (tokens.prompt if tokens else 0),
            completion=completion if completion is not None else (tokens.completion if tokens else 0),
        )
        if tokens is not None and tokens != usage:
            raise ValueError(
                f"inference.tokens: {tokens.prompt}/{tokens.completion} differs from the gen_ai.usage "
                f"attributes {usage.prompt}/{usage.completion} (prompt/completion)"
            )
        tokens = usage
    mapped = {
        name: value
        for name, value in _feature_attributes(attributes).items()
        if value is not None and name not in event.features
    }
    if not mapped and tokens is event.tokens:
        return event
    return event.model_copy(update={"tokens": tokens, "features": {**event.features, **mapped}})


def _first(*values: int | None) -> int | None:
    return next((v for v in values if v is not None), None)


def _feature_attributes(attributes: GenAiAttributes) -> dict[str, float | int | str | None]:
    return {
        "gen_ai.request.temperature": attributes.temperature,
        "gen_ai.request.top_p": attributes.top_p,
        "gen_ai.request.top_k": attributes.top_k,
        "gen_ai.request.frequency_penalty": attributes.frequency_penalty,
        "gen_ai.request.presence_penalty": attributes.presence_penalty,
        "gen_ai.request.max_tokens": attributes.max_tokens,
        "gen_ai.provider.name": attributes.provider_name
        or attributes.system
        or attributes.openinference_provider
        or attributes.openinference_system,
        "gen_ai.request.model": attributes.request_model or attributes.openinference_model_name,
        "gen_ai.response.model": attributes.response_model,
        "gen_ai.operation.name": attributes.operation_name,
    }
