"""What an alert is: labels, a stable fingerprint, and its life from firing to resolved.

Labels are derived from a finding's stage, rule and subject (model, principal,
resource, signing key). The fingerprint hashes the identifying labels (everything
but ``severity``), so the same condition on the same subject is always the same
alert however often it recurs, and different subjects never share one. Each kind
of alert keeps the parts of the subject it is about (:func:`labels_for`): detector
findings about a model leave the principal out, since a drifting model is one
problem whoever happens to call it; access anomalies keep it; policy alerts add the
resource, identity alerts the key. An alert *instance* starts with the first
occurrence and ends when it resolves; its ``alert_id`` names that instance.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from schemas.records import AlertRow, FindingRow

IDENTIFYING_LABELS = ("stage", "rule", "model", "principal")
"""Label names every fingerprint covers; ``severity`` is a label but not identity."""
SUBJECT_LABELS = ("resource", "key")
"""Labels only some alerts carry; the fingerprint covers each when the alert has it (so
the fingerprints of alerts without them are those of the releases before them)."""
LABEL_NAMES = (*IDENTIFYING_LABELS, *SUBJECT_LABELS, "severity")
"""Every label an alert can carry: routing files may name no other."""

AlertState = Literal["firing", "acknowledged", "silenced", "inhibited", "resolved"]
ALERT_STATES: tuple[AlertState, ...] = ("firing", "acknowledged", "silenced", "inhibited", "resolved")


PRINCIPAL_RULE_PREFIX = "access-"
"""Detector rules about what one principal does (the access monitor's): that principal is their subject."""


def labels_for(
    stage: str,
    rule: str,
    model: str,
    principal: str,
    severity: str,
    *,
    resource: str = "",
    key: str = "",
) -> dict[str, str]:
    """The label set of an alert; empty values are left out (as in Alertmanager).

    The labels name the alert's subject, and the fingerprint is made of them, so
    alerts about different subjects never fold into one:

    - an identity alert is about the principal an event claimed, the model and the
      signing key: a leaked key and a misconfigured one are two incidents, fixed
      apart, while the resources a forger names are its choice, not its subject;
    - a policy alert is about the principal, the model and the resource it was
      denied: two resources are two incidents;
    - an access anomaly is about the principal that behaved unusually; any other
      detector alert about the model, whoever calls it.

    ``resource`` is ``<kind>/<id>`` (:func:`resource_label`).
    """
    about_principal = stage != "detector" or rule.startswith(PRINCIPAL_RULE_PREFIX)
    candidates = {
        "stage": stage,
        "rule": rule,
        "model": model,
        "principal": principal if about_principal else "",
        "resource": resource if stage == "policy" else "",
        "key": key if stage == "identity" else "",
        "severity": severity,
    }
    return {name: value for name, value in candidates.items() if value}


def resource_label(kind: str, resource_id: str) -> str:
    """``dataset/ds-1``; empty when the row names no resource."""
    return f"{kind}/{resource_id}" if resource_id else ""


def labels_of(row: FindingRow | AlertRow) -> dict[str, str]:
    """The labels of a finding, or of the alert row a worker published for one: the
    notifier rebuilds from the row exactly the labels the worker's gate gave it."""
    return labels_for(
        row.stage,
        row.detector_or_rule,
        row.model_id,
        row.principal_id,
        row.severity,
        resource=resource_label(row.resource_kind, row.resource_id),
        key=row.key_id,
    )


def fingerprint(labels: Mapping[str, str]) -> str:
    """Stable across processes and releases: a hash of the identifying labels only."""
    parts = [f"{name}={labels.get(name, '')}" for name in IDENTIFYING_LABELS]
    parts += [f"{name}={labels[name]}" for name in SUBJECT_LABELS if labels.get(name)]
    identity = "\x1f".join(parts)
    return hashlib.sha256(identity.encode()).hexdigest()[:16]


def fingerprint_of(finding: FindingRow) -> str:
    return fingerprint(labels_of(finding))


def alert_id_for(fingerprint_value: str, first_finding_id: str) -> str:
    """One id per alert instance: the same first occurrence (a replay) gives the same id."""
    return hashlib.sha256(f"{fingerprint_value}:{first_finding_id}".encode()).hexdigest()[:16]


def subject_of(labels: Mapping[str, str]) -> str:
    if labels.get("stage") == "detector" and labels.get("principal"):
        return labels["principal"]  # an access anomaly: about who, not which model
    return labels.get("model") or labels.get("principal") or "-"


def title_for(labels: Mapping[str, str]) -> str:
    severity = labels.get("severity", "medium").upper()
    return f"[{severity}] {labels.get('rule') or 'default-deny'} on {subject_of(labels)}"


class Unsaved:
    """Remembers that an attribute was assigned since the state was last saved.

    The alert manager saves its state after every batch and every tick. Encoding every
    live alert and group to find the few a batch changed cost O(live alerts) per save,
    which an alert storm (thousands of distinct fingerprints) turned into seconds per
    batch; the snapshot writer encodes only what was assigned. Assign, never mutate a
    field in place (``alert.labels = labels``, not ``alert.labels[name] = value``):
    only assignments are seen, and group membership goes through the dispatcher.
    """

    def __setattr__(self, name: str, value: object) -> None:
        object.__setattr__(self, name, value)
        self.__dict__[UNSAVED] = True


UNSAVED = "_unsaved"


def unsaved(item: object) -> bool:
    return bool(item.__dict__.get(UNSAVED, True))


def mark_unsaved(item: object, value: bool = True) -> None:
    item.__dict__[UNSAVED] = value


@dataclass
class Alert(Unsaved):
    """The alert manager's view of one alert instance, updated as occurrences arrive.

    ``occurrences`` counts every finding folded into the instance; ``notified_count``
    is the count the last notification showed, so the next one can say how many
    more arrived in between.
    """

    alert_id: str
    fingerprint: str
    labels: dict[str, str]
    severity: str
    title: str
    summary: str
    first_seen: datetime
    """The producer's ``ts`` of the first occurrence: evidence, never compared with the monitor's clock."""
    last_seen: datetime
    occurrences: int
    last_event_id: str
    updated_at: float
    """Clock reading of the last occurrence (drives the resolve timeout)."""
    admitted_at: datetime
    """When the monitor admitted the first occurrence (processing time): what an ack is compared with."""
    state: AlertState = "firing"
    runbook_url: str = ""
    evidence_query: str = ""
    controls: list[str] = field(default_factory=list)
    details: dict[str, object] = field(default_factory=dict)
    acked_by: str = ""
    suppressed_by: str = ""
    """Silence id, or ``inhibit:<rule>``, while silenced or inhibited."""
    resolved_at: datetime | None = None

    @property
    def active(self) -> bool:
        """Firing or acknowledged: still a problem, and shown in its group's messages."""
        return self.state in ("firing", "acknowledged")
