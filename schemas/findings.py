"""The one way a ``findings`` row is made, whichever stage speaks.

Identity, policy and detector findings differ in what they say, not in how the row
is formed: the stage packages decide (``identity.findings``, ``policies.findings``,
``detectors.findings``) and call :func:`finding_row`, so ids, details and columns
are alike for a streamed event and an inline decision.

:class:`Subject` is who and what a finding is about: the model, the principal, the
resource and the signing key the event named. Every finding carries all four as
columns; alerting picks from them what each kind of alert is about.

A finding's id hashes the event, the stage, the rule and ``discriminator``, what
the finding is about within its event: a feature or segment for a detector, the
message's place in the log for identity and policy findings. A redelivered event
yields the same id (the store's ReplacingMergeTree keeps one copy); a replay, at
another place in the log, is a finding of its own.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import orjson

from schemas.events import Event
from schemas.records import FindingRow
from schemas.severity import parse_severity


@dataclass(frozen=True, slots=True)
class Subject:
    """Who and what a finding is about."""

    model_id: str
    principal_id: str
    resource_kind: str = ""
    resource_id: str = ""
    key_id: str = ""

    @classmethod
    def of_event(cls, event: Event, model_id: str) -> Subject:
        """What the event names; ``key_id`` is the key it says it was signed with."""
        return cls(
            model_id=model_id,
            principal_id=event.principal.id,
            resource_kind=event.resource.kind,
            resource_id=event.resource.id,
            key_id=event.signature.key_id if event.signature is not None else "",
        )


def finding_id(event_id: str, stage: str, rule: str, discriminator: str) -> str:
    identity = f"{event_id}\x1f{stage}\x1f{rule}\x1f{discriminator}"
    return hashlib.sha256(identity.encode()).hexdigest()[:24]


def finding_row(
    *,
    event_id: str,
    ts: datetime,
    stage: str,
    rule: str,
    severity: str,
    message: str,
    details: Mapping[str, object],
    subject: Subject,
    discriminator: str = "",
) -> FindingRow:
    """A finding row; an unknown severity is a ValueError (a bug in the stage, not bad input)."""
    return FindingRow(
        finding_id=finding_id(event_id, stage, rule, discriminator),
        ts=ts,
        event_id=event_id,
        model_id=subject.model_id,
        principal_id=subject.principal_id,
        stage=stage,
        detector_or_rule=rule,
        severity=parse_severity(severity),
        message=message,
        details=orjson.dumps(details, option=orjson.OPT_NON_STR_KEYS).decode(),
        resource_kind=subject.resource_kind,
        resource_id=subject.resource_id,
        key_id=subject.key_id,
    )
