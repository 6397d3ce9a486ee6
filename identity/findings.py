"""What the identity stage reports about an event it could not verify.

Each reason a verdict can give has its severity here: a signature that does not
match, or a key used outside what it may speak for, is an attack until shown
otherwise (critical); a missing signature or an unknown key is a misconfigured
producer as often as an intruder (high); an expired key or token, or a stale event,
is usually a clock or a rotation late (medium).
"""

from __future__ import annotations

from identity.verify import IDENTITY_CONTROLS, Verdict
from schemas import Severity, Subject, finding_row
from schemas.events import Event
from schemas.records import FindingRow

STAGE = "identity"
IDENTITY_SEVERITY: dict[str, Severity] = {
    "unsigned": "high",
    "unknown_key": "high",
    "alg_mismatch": "critical",
    "key_not_for_source": "critical",
    "key_not_for_principal": "critical",
    "key_expired": "medium",
    "bad_signature": "critical",
    "token_invalid": "critical",
    "token_expired": "medium",
    "token_not_yet_valid": "medium",
    "token_wrong_issuer": "critical",
    "token_wrong_audience": "high",
    "token_subject_mismatch": "critical",
    "token_unverifiable": "medium",
    "stale": "medium",
    "replay": "high",
}
UNLISTED_SEVERITY: Severity = "high"
"""A reason added to the verifier before it is rated here."""


def identity_finding(event: Event, model_id: str, verdict: Verdict, origin: str) -> FindingRow:
    """The finding of an unverified event; ``origin`` is its place in the log (or the API)."""
    reason = verdict.reason.replace("_", " ")
    key = f" (key {verdict.key_id})" if verdict.key_id else ""
    return finding_row(
        event_id=event.event_id,
        ts=event.ts,
        stage=STAGE,
        rule=f"identity-{verdict.reason.replace('_', '-')}",
        severity=IDENTITY_SEVERITY.get(verdict.reason, UNLISTED_SEVERITY),
        message=f"event {event.event_id} from source {event.source!r} is unverified: {reason}{key}",
        details={
            "reason": verdict.reason,
            "key_id": verdict.key_id,
            "source": event.source,
            "token": verdict.token.reason,
            "controls": IDENTITY_CONTROLS,
        },
        subject=Subject.of_event(event, model_id),
        discriminator=origin,
    )
