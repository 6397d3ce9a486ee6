"""What the policy stage reports about a denied request, streamed or asked inline.

A deny is as severe as the most severe policy that decided it (``@severity``), and
``medium`` when no policy permits the request (default deny). The finding names
the deciding policies, the controls they evidence and their runbooks, so an alert
raised from it explains itself.
"""

from __future__ import annotations

from datetime import datetime

from policies.engine import Decision, PolicyEngine
from schemas import Subject, finding_row, highest
from schemas.records import FindingRow

STAGE = "policy"


def policy_finding(
    engine: PolicyEngine,
    decision: Decision,
    *,
    event_id: str,
    ts: datetime,
    action: str,
    subject: Subject,
    origin: str,
) -> FindingRow:
    """The finding of a deny; ``origin`` is where the request came from (its place in the
    log, or ``api``), which also tells a replayed request's finding from the first."""
    deciding = engine.deciding_policies(decision)
    why = "; ".join(i.title for i in deciding) or "no policy permits it (default deny)"
    return finding_row(
        event_id=event_id,
        ts=ts,
        stage=STAGE,
        rule=",".join(decision.policy_ids),
        severity=highest(i.severity for i in deciding),
        message=(
            f"{subject.principal_id} denied {action} on {subject.resource_kind} {subject.resource_id}: {why}"
        ),
        details={
            "policy_ids": list(decision.policy_ids),
            "bundle_revision": engine.revision,
            "controls": engine.controls_of(decision),
            "runbooks": [i.runbook for i in deciding if i.runbook],
            "errors": list(decision.errors),
            "origin": origin,
        },
        subject=subject,
        discriminator=origin,
    )
