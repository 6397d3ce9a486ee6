"""The ``decisions`` row of a decided request, streamed or asked inline.

One place forms it, so an answer of the decision API and a decision on a streamed
event carry the same columns the same way (controls, roles, the Cedar types).
"""

from __future__ import annotations

from datetime import datetime

from policies.engine import Decision, PolicyEngine
from policies.requests import AuthzRequest
from schemas.records import DecisionRow


def decision_row(
    engine: PolicyEngine,
    request: AuthzRequest,
    decision: Decision,
    *,
    event_id: str,
    ts: datetime,
    resource_kind: str,
    model_id: str,
    verified: bool,
    facts: str,
    topic: str,
    partition: int,
    offset: int,
) -> DecisionRow:
    """``facts`` is the request's facts as stored (JSON), ``topic`` / ``partition`` /
    ``offset`` where the request came from (``api`` and its journal offset for the API)."""
    return DecisionRow(
        event_id=event_id,
        ts=ts,
        principal_id=request.principal_id,
        action=request.action,
        resource_kind=resource_kind,
        resource_id=request.resource_id,
        model_id=model_id,
        decision="allow" if decision.allowed else "deny",
        policy_ids=list(decision.policy_ids),
        bundle_revision=engine.revision,
        verified=verified,
        controls=engine.controls_of(decision),
        principal_type=request.principal_type,
        roles=list(request.roles),
        resource_type=request.resource_type,
        facts=facts,
        errors=list(decision.errors),
        topic=topic,
        partition=partition,
        offset=offset,
    )
