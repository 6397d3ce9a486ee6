"""The rows of one inline decision: the same tables and shapes as a streamed one.

A decision answered by the API is stored as an ``events`` row (the question: who
asked, proven how, about what) and a ``decisions`` row, both with ``topic`` ``api``
(their origin) and ``offset`` their place in the API's journal, so the audit ledger
chains them in a stream of their own (``api:0``). A deny adds a ``policy`` finding.
The decision row and the finding are built by the same functions as for a streamed
event (``policies.decisions``, ``policies.findings``), so alert routing, grouping and
reports treat both alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from policies import decision_row, policy_finding
from policies.engine import Decision, PolicyEngine
from policies.requests import AuthzRequest
from schemas import Subject
from schemas.records import DecisionRow, EventRow, FindingRow

ORIGIN = "api"
"""``decisions.topic`` of every decision the API answers."""


@dataclass(frozen=True, slots=True)
class Asked:
    """How the question came: what its ``events`` row says besides the request itself."""

    type: str
    source: str
    principal_kind: str
    verify_reason: str
    key_id: str
    token_status: str
    payload: str
    signature: str = ""


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    """What the journal keeps of one decision until the store has it."""

    event: EventRow
    decision: DecisionRow
    findings: tuple[FindingRow, ...]

    def to_json(self) -> list[Any]:
        """Rows as arrays in column order: no column names repeated on every line."""
        return [list(self.event), list(self.decision), [list(f) for f in self.findings]]

    @classmethod
    def from_json(cls, data: list[Any]) -> DecisionRecord:
        event, decision, findings = data
        return cls(
            _row(EventRow, event, "ts", "received_at"),
            _row(DecisionRow, decision, "ts"),
            tuple(_row(FindingRow, f, "ts") for f in findings),
        )


_Row = TypeVar("_Row", EventRow, DecisionRow, FindingRow)


def _row(kind: type[_Row], values: list[Any], *times: str) -> _Row:
    """A row read back from the journal, its timestamps parsed again; columns added to the
    row since the entry was written (those with defaults) take their defaults."""
    fields, defaults = kind._fields, kind._field_defaults
    if not len(fields) - len(defaults) <= len(values) <= len(fields):
        raise ValueError(f"{kind.__name__} has {len(fields)} columns, the journal {len(values)}")
    values = list(values)
    for name in fields[len(values) :]:
        values.append(defaults[name])
    for name in times:
        at = kind._fields.index(name)
        values[at] = datetime.fromisoformat(values[at])
    return kind(*values)


def decision_record(
    decision_id: str,
    at: datetime,
    request: AuthzRequest,
    decision: Decision,
    engine: PolicyEngine,
    *,
    asked: Asked,
    verified: bool,
    resource_kind: str,
    offset: int,
    model_id: str,
    facts_json: str,
) -> DecisionRecord:
    event = EventRow(
        event_id=decision_id,
        ts=at,
        received_at=at,
        type=asked.type,
        source=asked.source,
        principal_id=request.principal_id,
        principal_kind=asked.principal_kind,
        roles=list(request.roles),
        action=request.action,
        resource_kind=resource_kind,
        resource_id=request.resource_id,
        model_id=model_id,
        verified=verified,
        verify_reason=asked.verify_reason,
        key_id=asked.key_id,
        features={},
        payload=asked.payload,
        signature=asked.signature,
        topic=ORIGIN,
        partition=0,
        offset=offset,
        token_status=asked.token_status,
        trace_id="",
        span_id="",
    )
    row = decision_row(
        engine,
        request,
        decision,
        event_id=decision_id,
        ts=at,
        resource_kind=resource_kind,
        model_id=model_id,
        verified=verified,
        facts=facts_json,
        topic=ORIGIN,
        partition=0,
        offset=offset,
    )
    findings: tuple[FindingRow, ...] = ()
    if not decision.allowed:
        deny = policy_finding(
            engine,
            decision,
            event_id=decision_id,
            ts=at,
            action=request.action,
            subject=Subject(model_id, request.principal_id, resource_kind, request.resource_id, asked.key_id),
            origin=ORIGIN,
        )
        findings = (deny,)
    return DecisionRecord(event, row, findings)
