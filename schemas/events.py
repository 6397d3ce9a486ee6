"""Pydantic v2 models of the four event types, joined in one discriminated union.

Models are strict: unknown fields are errors (a typo such as ``feature`` for
``features`` is rejected instead of silently ignored) and values must have their JSON
type (``"5"`` is not an integer, ``1`` is not a boolean, ``ts`` is an RFC 3339 string);
the only widening is JSON's own, integers where numbers are expected.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    field_validator,
    model_validator,
)

Identifier = Annotated[str, Field(min_length=1, max_length=256)]
Int64 = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]
"""Integers beyond 64 bits are refused: JSON parsers disagree on them (some round them
to floats), so two different messages could share one canonical form and signature."""
Count = Annotated[int, Field(ge=0, le=2**63 - 1)]
FeatureValue = bool | Int64 | float | str

LIFECYCLE_ACTIONS = (
    "ingest",
    "train",
    "fine_tune",
    "evaluate",
    "register",
    "deploy",
    "rollback",
)
ACCESS_ACTIONS = ("read", "write", "export", "delete", "login")


class StrictModel(BaseModel):
    """What every message body Vigil accepts is: unknown fields are errors (a typo must not
    silently mean something else), values keep their JSON types, and nothing mutates it."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Principal(StrictModel):
    id: Identifier
    kind: Literal["user", "service"]
    roles: tuple[Identifier, ...] = ()


class PrincipalRef(StrictModel):
    """A principal named in a question asked before the action (the decision API, the
    release gate): who, not what roles it claims; roles come from the inventory."""

    id: Identifier
    kind: Literal["user", "service"] = "user"


class Resource(StrictModel):
    kind: Literal["model", "dataset", "endpoint", "feature_store"]
    id: Identifier
    version: Identifier | None = None


class Signature(StrictModel):
    """Hex signature over the canonical form: 32 bytes for HMAC-SHA256, 64 for Ed25519."""

    alg: Literal["hmac-sha256", "ed25519"]
    key_id: Identifier
    value: Annotated[str, Field(min_length=64, max_length=128, pattern=r"^[0-9a-fA-F]+$")]

    @model_validator(mode="after")
    def _length_fits_alg(self) -> Signature:
        expected = 64 if self.alg == "hmac-sha256" else 128
        if len(self.value) != expected:
            raise ValueError(f"{self.alg} signature value must be {expected} hex digits")
        return self


class Auth(StrictModel):
    """A bearer token from the company identity provider (a JWT), proving the principal."""

    token: Annotated[str, Field(min_length=1, max_length=8192)]


TRACEPARENT = re.compile(
    r"(?!ff)(?:00-(?!0{32})([0-9a-f]{32})-(?!0{16})([0-9a-f]{16})-[0-9a-f]{2}"
    r"|(?!00)[0-9a-f]{2}-(?!0{32})([0-9a-f]{32})-(?!0{16})([0-9a-f]{16})-[0-9a-f]{2}(?:-.*)?)",
    re.DOTALL,
)
"""W3C Trace Context ``traceparent``: version, trace id, parent (span) id, flags, lowercase
hex. Version ``ff`` and all-zero ids are invalid; version ``00`` has exactly these four
fields, a later version may append more after a ``-``."""


def trace_ids(traceparent: str) -> tuple[str, str] | None:
    """(trace id, span id) of a valid ``traceparent``, else None."""
    match = TRACEPARENT.fullmatch(traceparent)
    if match is None:
        return None
    trace_id, span_id, later_trace_id, later_span_id = match.groups()
    return (trace_id, span_id) if trace_id is not None else (later_trace_id, later_span_id)


def _valid_traceparent(value: str | None) -> str | None:
    if value is not None and trace_ids(value) is None:
        raise ValueError("not a W3C traceparent: version-traceid(32 hex)-spanid(16 hex)-flags, lowercase")
    return value


class _EventBase(StrictModel):
    event_id: Identifier
    schema_version: Literal[1]
    ts: AwareDatetime
    source: Identifier
    principal: Principal
    resource: Resource
    auth: Auth | None = None
    traceparent: Annotated[str, Field(max_length=256)] | None = None
    """The W3C trace context of the call, signed with the event (a Kafka header is not)."""
    signature: Signature | None = None

    _check_traceparent = field_validator("traceparent")(_valid_traceparent)


def _finite(values: dict[str, float] | None) -> dict[str, float] | None:
    if values is not None:
        for name, value in values.items():
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"{name!r} is not a finite number")
    return values


class Prediction(StrictModel):
    label: FeatureValue | None = None
    score: float | None = Field(default=None, allow_inf_nan=False)


class TokenUsage(StrictModel):
    prompt: Count = 0
    completion: Count = 0


AttributeValue = FeatureValue | tuple[FeatureValue, ...]


class GenAiAttributes(StrictModel):
    """OpenTelemetry GenAI semantic-convention attributes of an LLM call, by their dotted names
    (and OpenInference's ``llm.*`` names for token counts, model and provider).

    The names an instrumented client already records on its span, so a service sends them
    as they are. The known names are typed; other attribute names (newer conventions,
    vendor attributes) are kept with scalar or array values but not interpreted. Token
    usage, the request parameters and the model names are mapped onto the contract by
    ``schemas.envelopes.with_gen_ai`` so the detectors see them.
    """

    model_config = ConfigDict(extra="allow", frozen=True, strict=True)
    __pydantic_extra__: dict[str, AttributeValue] = Field(init=False)

    operation_name: Identifier | None = Field(None, alias="gen_ai.operation.name")
    provider_name: Identifier | None = Field(None, alias="gen_ai.provider.name")
    system: Identifier | None = Field(None, alias="gen_ai.system")
    request_model: Identifier | None = Field(None, alias="gen_ai.request.model")
    response_model: Identifier | None = Field(None, alias="gen_ai.response.model")
    response_id: Identifier | None = Field(None, alias="gen_ai.response.id")
    conversation_id: Identifier | None = Field(None, alias="gen_ai.conversation.id")
    finish_reasons: tuple[Identifier, ...] | None = Field(None, alias="gen_ai.response.finish_reasons")
    temperature: float | None = Field(None, alias="gen_ai.request.temperature", allow_inf_nan=False)
    top_p: float | None = Field(None, alias="gen_ai.request.top_p", allow_inf_nan=False)
    top_k: float | None = Field(None, alias="gen_ai.request.top_k", allow_inf_nan=False)
    frequency_penalty: float | None = Field(
        None, alias="gen_ai.request.frequency_penalty", allow_inf_nan=False
    )
    presence_penalty: float | None = Field(None, alias="gen_ai.request.presence_penalty", allow_inf_nan=False)
    max_tokens: Count | None = Field(None, alias="gen_ai.request.max_tokens")
    choice_count: Count | None = Field(None, alias="gen_ai.request.choice.count")
    seed: Int64 | None = Field(None, alias="gen_ai.request.seed")
    input_tokens: Count | None = Field(None, alias="gen_ai.usage.input_tokens")
    output_tokens: Count | None = Field(None, alias="gen_ai.usage.output_tokens")
    prompt_tokens: Count | None = Field(None, alias="gen_ai.usage.prompt_tokens")
    completion_tokens: Count | None = Field(None, alias="gen_ai.usage.completion_tokens")
    # The same facts under OpenInference's names, which other instrumentations record.
    openinference_prompt_tokens: Count | None = Field(None, alias="llm.token_count.prompt")
    openinference_completion_tokens: Count | None = Field(None, alias="llm.token_count.completion")
    openinference_model_name: Identifier | None = Field(None, alias="llm.model_name")
    openinference_provider: Identifier | None = Field(None, alias="llm.provider")
    openinference_system: Identifier | None = Field(None, alias="llm.system")

    @model_validator(mode="after")
    def _extras_are_bounded(self) -> GenAiAttributes:
        extra = self.__pydantic_extra__ or {}
        if len(extra) > 128:
            raise ValueError(f"at most 128 other attributes, got {len(extra)}")
        for name, value in extra.items():
            if not 1 <= len(name) <= 256:
                raise ValueError("an attribute name has 1 to 256 characters")
            values = value if isinstance(value, tuple) else (value,)
            if any(isinstance(v, float) and not math.isfinite(v) for v in values):
                raise ValueError(f"{name!r} is not a finite number")
        return self


class InferenceEvent(_EventBase):
    type: Literal["inference"]
    action: Literal["infer"]
    model_id: Identifier
    model_version: Identifier
    artifact_digest: Identifier
    request_id: Identifier
    features: dict[Identifier, FeatureValue] = Field(max_length=512)
    prediction: Prediction
    latency_ms: Annotated[float, Field(ge=0, allow_inf_nan=False)]
    segment: dict[Identifier, Identifier] = Field(default_factory=dict, max_length=64)
    tokens: TokenUsage | None = None
    attributes: GenAiAttributes | None = None

    _check_features = field_validator("features")(_finite)


class FeedbackEvent(_EventBase):
    type: Literal["feedback"]
    action: Literal["feedback"]
    model_id: Identifier
    request_id: Identifier
    label: FeatureValue


class Approval(StrictModel):
    ticket: Identifier
    approver: Identifier


class TrainingEvent(_EventBase):
    type: Literal["training"]
    action: Literal[LIFECYCLE_ACTIONS]  # type: ignore[valid-type]
    run_id: Identifier
    model_id: Identifier
    dataset_id: Identifier
    dataset_digest: Identifier
    code_commit: Identifier
    artifact_digest: Identifier | None = None
    approval: Approval | None = None
    metrics: dict[Identifier, Annotated[float, Field(allow_inf_nan=False)]] = Field(
        default_factory=dict, max_length=256
    )


class Client(StrictModel):
    ip: Identifier
    user_agent: Annotated[str, Field(max_length=1024)] = ""


class AccessEvent(_EventBase):
    type: Literal["access"]
    action: Literal[ACCESS_ACTIONS]  # type: ignore[valid-type]
    outcome: Literal["allowed", "denied", "error"]
    client: Client
    mfa: bool
    records: Count = 0
    bytes: Count = 0


Event = Annotated[
    InferenceEvent | FeedbackEvent | TrainingEvent | AccessEvent,
    Field(discriminator="type"),
]

EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)


def model_id_of(event: Event) -> str:
    """The model an event concerns: its own for model events, the resource for access."""
    if isinstance(event, AccessEvent):
        return event.resource.id if event.resource.kind == "model" else ""
    return event.model_id


def routing_key(event: Event) -> str:
    """Kafka message key: model id for model events, principal id for access events."""
    if isinstance(event, AccessEvent):
        return event.principal.id
    return event.model_id
