"""Findings to alert rows, inside the pipeline: threshold, dedup, counts. No I/O.

Every finding at or above ``min_severity`` is an occurrence of the alert its
fingerprint names. A batch yields at most one row per alert it touched, carrying
the running occurrence count, so a burst of 10,000 identical findings is one row
(the ``alerts`` table keeps one row per alert instance in ``alerts_unique``; every
occurrence stays in ``findings``). An instance ends when its fingerprint has been
quiet for ``resolve_timeout``; the next occurrence starts a new instance with a
new ``alert_id``. Routing, grouping and notification happen in the notifier
(:class:`alerting.manager.AlertManager`), which reads the rows from ``ai.alerts``.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache

from alerting.model import alert_id_for, fingerprint, labels_for, resource_label, title_for
from schemas import parse_severity, severity_rank
from schemas.records import AlertRow, FindingRow

log = logging.getLogger(__name__)


@dataclass
class _Instance:
    alert_id: str
    first_ts: datetime
    occurrences: int
    severity: str
    last_seen: float


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class AlertGate:
    min_severity: str = "medium"
    resolve_timeout: float = 300.0
    """Seconds without an occurrence after which an alert instance is over."""
    clock: Callable[[], float] = time.monotonic
    wall_clock: Callable[[], datetime] = _utc_now
    max_fingerprints: int = 100_000
    evicted: int = 0
    """Instances forgotten early because ``max_fingerprints`` was reached."""
    _instances: OrderedDict[str, _Instance] = field(default_factory=OrderedDict, repr=False)

    def __post_init__(self) -> None:
        parse_severity(self.min_severity)
        if self.max_fingerprints < 1:
            raise ValueError("max_fingerprints must be at least 1")

    def admit(self, findings: Iterable[FindingRow]) -> list[AlertRow]:
        """One row per alert touched by this batch, in order of first touch.

        An event whose sender could not be verified raises its identity alert only:
        the policy denial that follows from it (unverified senders are denied) is the
        same incident, and is kept as a finding, not raised again.
        """
        threshold = severity_rank(self.min_severity)
        now = self.clock()
        findings = list(findings)
        unverified = {f.event_id for f in findings if f.stage == "identity"}
        touched: dict[str, tuple[_Instance, FindingRow, dict[str, str]]] = {}
        for finding in findings:
            if severity_rank(finding.severity) < threshold:
                continue
            if finding.stage == "policy" and finding.event_id in unverified:
                continue
            labels, key = _identify(
                finding.stage,
                finding.detector_or_rule,
                finding.model_id,
                finding.principal_id,
                finding.severity,
                resource_label(finding.resource_kind, finding.resource_id),
                finding.key_id,
            )
            instance = self._instance(key, finding, now)
            instance.occurrences += 1
            instance.last_seen = now
            if severity_rank(finding.severity) > severity_rank(instance.severity):
                instance.severity = finding.severity
            touched[key] = (instance, finding, labels)
        fired_at = self.wall_clock()
        return [
            _row(key, instance, latest, labels, fired_at)
            for key, (instance, latest, labels) in touched.items()
        ]

    def _instance(self, key: str, finding: FindingRow, now: float) -> _Instance:
        instance = self._instances.get(key)
        if instance is not None and now - instance.last_seen < self.resolve_timeout:
            self._instances.move_to_end(key)
            return instance
        if instance is None and len(self._instances) >= self.max_fingerprints:
            self._make_room(now)
        instance = _Instance(
            alert_id=alert_id_for(key, finding.finding_id),
            first_ts=finding.ts,
            occurrences=0,
            severity=finding.severity,
            last_seen=now,
        )
        self._instances[key] = instance
        self._instances.move_to_end(key)
        return instance

    def _make_room(self, now: float) -> None:
        """Drop instances that are over; if none are, the least recently seen."""
        over = [k for k, v in self._instances.items() if now - v.last_seen >= self.resolve_timeout]
        for key in over:
            del self._instances[key]
        while len(self._instances) >= self.max_fingerprints:
            self._instances.popitem(last=False)
            self.evicted += 1
        if not over:
            log.warning("alert gate full (%d alerts): forgot the least recent one", self.max_fingerprints)


@lru_cache(maxsize=65_536)
def _identify(
    stage: str, rule: str, model: str, principal: str, severity: str, resource: str, key: str
) -> tuple[dict[str, str], str]:
    """Labels and fingerprint, memoised: a burst repeats the same few label sets."""
    labels = labels_for(stage, rule, model, principal, severity, resource=resource, key=key)
    return labels, fingerprint(labels)


def _row(
    key: str, instance: _Instance, latest: FindingRow, labels: dict[str, str], fired_at: datetime
) -> AlertRow:
    labels = {**labels, "severity": instance.severity}
    return AlertRow(
        alert_id=instance.alert_id,
        ts=instance.first_ts,
        fired_at=fired_at,
        fingerprint=key,
        severity=instance.severity,
        title=title_for(labels),
        summary=latest.message,
        stage=latest.stage,
        detector_or_rule=latest.detector_or_rule,
        model_id=latest.model_id,
        principal_id=latest.principal_id,
        event_id=latest.event_id,
        occurrences=instance.occurrences,
        resource_kind=latest.resource_kind,
        resource_id=latest.resource_id,
        key_id=latest.key_id,
    )
