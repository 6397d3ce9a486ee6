"""JSON Schema (draft 2020-12) of the event contract, generated from the pydantic models.

Producers in any language validate against it before sending; ``vigil schema`` prints
it and ``schemas/json/events.schema.json`` is a checked-in copy kept equal by a test.
pydantic gives the structure (types, required fields, bounds, ``additionalProperties:
false``); this module adds what a producer needs beside it: a description of every
field, the four documented examples, and the signature's length per algorithm.
Descriptions live here rather than on the models so that the models stay a plain
statement of the rules; a test fails for any field without a description.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import TypeAdapter

from schemas.events import EVENT_ADAPTER, AccessEvent, FeedbackEvent, InferenceEvent, TrainingEvent

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
EVENT_MODELS = {
    "inference": InferenceEvent,
    "feedback": FeedbackEvent,
    "training": TrainingEvent,
    "access": AccessEvent,
}
RFC3339_WITH_OFFSET = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$"

_NUMBER_ADVICE = (
    " Send whole numbers as integers and other numbers as plain decimals between 0.0001 and 10^15 in"
    " magnitude, so that every JSON library prints them as the canonical form does (docs/events.md,"
    " 'Canonical form')."
)

MODEL_DESCRIPTIONS = {
    "InferenceEvent": "One model call. Topic `ai.inference`, message key `model_id`.",
    "FeedbackEvent": (
        "The ground truth for an earlier prediction. Topic `ai.inference`, message key `model_id`."
    ),
    "TrainingEvent": "A step of the model lifecycle. Topic `ai.training`, message key `model_id`.",
    "AccessEvent": (
        "A person or service touching data, models or endpoints."
        " Topic `ai.access`, message key `principal.id`."
    ),
    "Principal": "Who acted.",
    "Resource": "What was acted on.",
    "Signature": (
        "HMAC-SHA256 or Ed25519 signature over the canonical form of the event: the event without"
        " its `signature` member, serialized as JSON with keys sorted by code point at every level,"
        " no whitespace, UTF-8 without ASCII escaping (docs/events.md, 'Signing'). Covers every"
        " other member, `auth` included."
    ),
    "Auth": "The acting user's bearer token from the identity provider.",
    "Prediction": "What the model answered; may be `{}`.",
    "TokenUsage": "Token counts of a language-model call.",
    "GenAiAttributes": (
        "OpenTelemetry GenAI semantic-convention attributes of an LLM call, by their dotted names"
        " (docs/events.md, 'OpenTelemetry GenAI attributes'). Other attribute names are kept (string,"
        " number, boolean or an array of them, at most 128) but not interpreted."
    ),
    "Approval": "The change approval; policies require it for `fine_tune`, `deploy` and `rollback`.",
    "Client": "The client as the service saw it.",
}

COMMON_FIELDS = {
    "event_id": "Unique per event; a resend keeps it. The same id at another place in the log is a replay.",
    "schema_version": "Version of this contract; must be 1.",
    "ts": (
        "When it happened: RFC 3339 date-time with a UTC offset (`Z` or `+hh:mm`), fractional seconds"
        " allowed (stored to the millisecond). Must lie within 300 s of the Kafka message time to be"
        " verified."
    ),
    "source": "The producing system, e.g. `checkout-api`; the signing key must list it.",
    "principal": "Who acted; the signing key must be allowed to speak for `principal.id`.",
    "resource": "What was acted on.",
    "auth": "The acting user's bearer token (JWT); `null` means the same as omitting it.",
    "signature": (
        "Signature over the canonical form; an event without it is stored but unverified and denied."
    ),
    "traceparent": (
        "W3C Trace Context `traceparent` of the call (`00-<32 hex trace id>-<16 hex span id>-<2 hex"
        " flags>`, lowercase); signed with the event, stored as `trace_id` and `span_id`."
    ),
    "type": "The event type; decides the schema, not the topic.",
}

FIELDS = {
    "InferenceEvent": {
        "action": "Always `infer`.",
        "model_id": "The model called; also the Kafka message key.",
        "model_version": "Version of the model that answered.",
        "artifact_digest": "Digest of the served artifact, e.g. `sha256:...`.",
        "request_id": "Joins feedback to this prediction.",
        "features": (
            "Model inputs by name (at most 512): strings, numbers or booleans. Numeric features of verified"
            " events feed the drift detectors." + _NUMBER_ADVICE
        ),
        "prediction": "What the model answered; may be `{}`.",
        "latency_ms": "Time the call took, in milliseconds; at least 0." + _NUMBER_ADVICE,
        "segment": 'Slices to compare drift by (at most 64), e.g. `{"region": "eu"}`.',
        "tokens": "Token counts, for language models.",
        "attributes": (
            "OpenTelemetry GenAI attributes of an LLM call; token usage fills `tokens` (and must agree"
            " with it), request parameters and model names become features."
        ),
    },
    "FeedbackEvent": {
        "action": "Always `feedback`.",
        "model_id": "The model whose prediction this labels; also the Kafka message key.",
        "request_id": "The `request_id` of the inference event.",
        "label": "The true label; not `null`.",
    },
    "TrainingEvent": {
        "action": "The lifecycle step.",
        "run_id": "The training or pipeline run.",
        "model_id": "The model changed; also the Kafka message key.",
        "dataset_id": "The dataset used.",
        "dataset_digest": "Digest of the dataset's content.",
        "code_commit": "Commit of the training code.",
        "artifact_digest": "Digest of the produced artifact, e.g. `sha256:...`.",
        "approval": "The change approval; required by the policies for `fine_tune`, `deploy`, `rollback`.",
        "metrics": "Evaluation metrics by name (at most 256), numbers." + _NUMBER_ADVICE,
    },
    "AccessEvent": {
        "action": "What the principal did.",
        "outcome": "What the service itself decided.",
        "client": "The client as the service saw it.",
        "mfa": (
            "Whether the session used multi-factor authentication (a verified token's claims decide instead)."
        ),
        "records": "Records touched; at least 0.",
        "bytes": "Bytes transferred; at least 0.",
    },
    "Principal": {
        "id": "User name or service account; the Kafka message key of access events.",
        "kind": "`user` or `service`.",
        "roles": "Roles as claimed; stored, never used by the policies (roles come from the inventory).",
    },
    "Resource": {
        "kind": "The kind of resource.",
        "id": "The resource's identifier.",
        "version": "The resource's version, if it has one.",
    },
    "Signature": {
        "alg": "The key's algorithm.",
        "key_id": "A key of Vigil's key registry that may sign for `source` and `principal.id`.",
        "value": "Hex digits: 64 for `hmac-sha256` (HMAC of the canonical bytes), 128 for `ed25519`.",
    },
    "Auth": {"token": "A JWT issued to the principal; its subject must be `principal.id`."},
    "Prediction": {
        "label": "The predicted label.",
        "score": "The model's score or probability." + _NUMBER_ADVICE,
    },
    "TokenUsage": {"prompt": "Prompt tokens.", "completion": "Completion tokens."},
    "GenAiAttributes": {
        "gen_ai.operation.name": "The operation, e.g. `chat`; a categorical feature.",
        "gen_ai.provider.name": "The provider, e.g. `openai`; a categorical feature.",
        "gen_ai.system": "Deprecated name of `gen_ai.provider.name`, used when that is absent.",
        "gen_ai.request.model": "The model asked for, e.g. `gpt-4o`; a categorical feature.",
        "gen_ai.response.model": "The model that answered; a categorical feature.",
        "gen_ai.response.id": "The provider's id of the completion.",
        "gen_ai.conversation.id": "The conversation the call belongs to.",
        "gen_ai.response.finish_reasons": "Why generation stopped, one reason per choice.",
        "gen_ai.request.temperature": "Sampling temperature; a numeric feature.",
        "gen_ai.request.top_p": "Nucleus sampling bound; a numeric feature.",
        "gen_ai.request.top_k": "Top-k sampling bound; a numeric feature.",
        "gen_ai.request.frequency_penalty": "Frequency penalty; a numeric feature.",
        "gen_ai.request.presence_penalty": "Presence penalty; a numeric feature.",
        "gen_ai.request.max_tokens": "Most tokens the call may generate; a numeric feature.",
        "gen_ai.request.choice.count": "Choices asked for.",
        "gen_ai.request.seed": "Sampling seed.",
        "gen_ai.usage.input_tokens": "Input (prompt) tokens; fills `tokens.prompt`.",
        "gen_ai.usage.output_tokens": "Output (completion) tokens; fills `tokens.completion`.",
        "gen_ai.usage.prompt_tokens": "Deprecated name of `gen_ai.usage.input_tokens`.",
        "gen_ai.usage.completion_tokens": "Deprecated name of `gen_ai.usage.output_tokens`.",
        "llm.token_count.prompt": "OpenInference's prompt token count; `tokens.prompt` without a GenAI one.",
        "llm.token_count.completion": (
            "OpenInference's completion token count; fills `tokens.completion` without a GenAI one."
        ),
        "llm.model_name": "OpenInference's model name; the `gen_ai.request.model` feature otherwise.",
        "llm.provider": "OpenInference's provider; the `gen_ai.provider.name` feature without a GenAI one.",
        "llm.system": "OpenInference's AI system; the provider feature without any other.",
    },
    "Approval": {"ticket": "The change ticket, e.g. `CHG-1042`.", "approver": "Who approved the change."},
    "Client": {
        "ip": "The client address as the service saw it (not checked as an IP address).",
        "user_agent": "The client's user agent, at most 1024 characters.",
    },
}

_PRINCIPAL = {"id": "svc-checkout", "kind": "service", "roles": ["inference-client"]}
EXAMPLES: dict[str, dict[str, Any]] = {
    "inference": {
        "event_id": "0b7f3c2e-5d1a-4c8e-9f0a-2f6d8e1c4a77",
        "schema_version": 1,
        "type": "inference",
        "ts": "2026-11-26T06:15:02.481Z",
        "source": "checkout-api",
        "principal": _PRINCIPAL,
        "action": "infer",
        "resource": {"kind": "model", "id": "fraud-v3", "version": "3"},
        "model_id": "fraud-v3",
        "model_version": "3",
        "artifact_digest": "sha256:afe6e197ae47e31fe723ac1f69ab8984fe9a06f297f3f963b09267ba4b0ddc41",
        "request_id": "req-7f3a9c41",
        "features": {"amount": 42.5, "merchant_risk": 0.1834, "country": "DE", "card_present": True},
        "prediction": {"label": 0, "score": 0.1291},
        "latency_ms": 11.7,
        "segment": {"region": "eu", "channel": "web"},
    },
    "feedback": {
        "event_id": "5e2d9a10-7c3b-4f61-8a2e-d41b0c9f3e58",
        "schema_version": 1,
        "type": "feedback",
        "ts": "2026-11-26T06:42:17.090Z",
        "source": "labeling",
        "principal": {"id": "svc-labeler", "kind": "service", "roles": ["labeler"]},
        "action": "feedback",
        "resource": {"kind": "model", "id": "fraud-v3"},
        "model_id": "fraud-v3",
        "request_id": "req-7f3a9c41",
        "label": 1,
    },
    "training": {
        "event_id": "c91f4b7e-2a6d-4e0b-b3c8-7d5e1f2a9b04",
        "schema_version": 1,
        "type": "training",
        "ts": "2026-11-26T07:03:55.000Z",
        "source": "ml-platform",
        "principal": {"id": "alice", "kind": "user", "roles": ["ml-engineer"]},
        "action": "fine_tune",
        "resource": {"kind": "model", "id": "fraud-v3", "version": "4"},
        "run_id": "run-20261126-0703",
        "model_id": "fraud-v3",
        "dataset_id": "transactions-2026",
        "dataset_digest": "sha256:558f40ab105092916fc30481460a72c0055bce9ad9e3c0854c43ca2013c44d95",
        "code_commit": "4f1c2e9a7b3d5e6f8091a2b3c4d5e6f708192a3b",
        "artifact_digest": "sha256:de4f31153a600d1ca63858ad91cf2638111f8a9c85afb377db25adba9f448bdc",
        "approval": {"ticket": "CHG-1042", "approver": "dana"},
        "metrics": {"auc": 0.9412, "logloss": 0.1873},
    },
    "access": {
        "event_id": "f3a8d6c2-9b1e-4d7a-a5f0-6c2e8b4d1a93",
        "schema_version": 1,
        "type": "access",
        "ts": "2026-11-26T07:10:31.254+01:00",
        "source": "data-portal",
        "principal": {"id": "bob", "kind": "user", "roles": ["analyst"]},
        "action": "export",
        "resource": {"kind": "dataset", "id": "customers-pii"},
        "outcome": "allowed",
        "client": {"ip": "10.0.4.17", "user_agent": "portal/2.1"},
        "mfa": True,
        "records": 250000,
        "bytes": 48000000,
    },
}
"""The events of docs/events.md, 'Examples' (unsigned)."""

_SIGNATURE_LENGTH_BY_ALG = [
    {
        "if": {"properties": {"alg": {"const": alg}}},
        "then": {"properties": {"value": {"minLength": digits, "maxLength": digits}}},
    }
    for alg, digits in (("hmac-sha256", 64), ("ed25519", 128))
]


def event_json_schema(event_type: str | None = None) -> dict[str, Any]:
    """The schema of every event (a union on ``type``), or of one event type alone."""
    if event_type is None:
        schema = EVENT_ADAPTER.json_schema()
        title = "Vigil event"
        description = "One event of the Vigil contract (docs/events.md); `type` selects the schema."
    else:
        model = EVENT_MODELS[event_type]
        schema = TypeAdapter[Any](model).json_schema()  # the model at the top, its parts in $defs
        _describe(model.__name__, schema)
        title, description = f"Vigil {event_type} event", schema.pop("description")
    for name, definition in schema.get("$defs", {}).items():
        _describe(name, definition)
    schema.pop("title", None)
    return {"$schema": SCHEMA_DIALECT, "title": title, "description": description, **schema}


def _describe(name: str, definition: dict[str, Any]) -> None:
    """Add descriptions, examples and the rules pydantic cannot express to one model's schema."""
    if name in MODEL_DESCRIPTIONS:
        definition["description"] = MODEL_DESCRIPTIONS[name]
    own = FIELDS.get(name, {})
    is_event = name in {model.__name__ for model in EVENT_MODELS.values()}
    for field, prop in definition.get("properties", {}).items():
        prop.pop("title", None)
        text = own.get(field) or (COMMON_FIELDS.get(field) if is_event else None)
        if text is not None:
            prop["description"] = text
    if is_event:
        definition["properties"]["ts"]["pattern"] = RFC3339_WITH_OFFSET
        event_type = definition["properties"]["type"]["const"]
        definition["examples"] = [EXAMPLES[event_type]]
    if name == "Signature":
        definition["allOf"] = _SIGNATURE_LENGTH_BY_ALG


def render(event_type: str | None = None) -> str:
    """The schema as ``vigil schema`` prints it and ``schemas/json/`` keeps it."""
    return json.dumps(event_json_schema(event_type), indent=2, ensure_ascii=False) + "\n"
