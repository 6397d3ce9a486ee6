"""The contract: events (pydantic models, the canonical signing form, the decoder) and
the rows made of them (every table's row, how a finding is formed, the severity scale,
what a stored row keeps of a credential).

Everything a producer must get right lives here; docs/events.md is its prose twin, and
docs/tables.md that of the rows.
"""

from schemas.canonical import canonical_bytes
from schemas.decode import Decoded, Rejection, decode
from schemas.events import (
    AccessEvent,
    Approval,
    Event,
    FeedbackEvent,
    Identifier,
    InferenceEvent,
    PrincipalRef,
    StrictModel,
    TrainingEvent,
)
from schemas.findings import Subject, finding_row
from schemas.redaction import header_without_tokens, stored_payload, without_tokens
from schemas.severity import SEVERITIES, SEVERITY_RANK, Severity, highest, parse_severity, severity_rank

__all__ = [
    "SEVERITIES",
    "SEVERITY_RANK",
    "AccessEvent",
    "Approval",
    "Decoded",
    "Event",
    "FeedbackEvent",
    "Identifier",
    "InferenceEvent",
    "PrincipalRef",
    "Rejection",
    "Severity",
    "StrictModel",
    "Subject",
    "TrainingEvent",
    "canonical_bytes",
    "decode",
    "finding_row",
    "header_without_tokens",
    "highest",
    "parse_severity",
    "severity_rank",
    "stored_payload",
    "without_tokens",
]
