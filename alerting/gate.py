"""Turn findings into alerts without flooding.

A finding at or above the alerting severity becomes an alert the first time its
fingerprint (stage, rule, model, principal) is seen; repeats within
``repeat_interval`` seconds are folded into the next alert's ``occurrences`` count
instead of notifying again. Every finding is still stored in ``findings``.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from schemas.records import AlertRow, FindingRow

SEVERITY_RANK = {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}


def fingerprint_of(finding: FindingRow) -> str:
    """Detector findings group per model; identity and policy findings per principal too."""
    principal = "" if finding.stage == "detector" else finding.principal_id
    labels = (finding.stage, finding.detector_or_rule, finding.model_id, principal)
    return hashlib.sha256("\x1f".join(labels).encode()).hexdigest()[:16]


@dataclass
class _Folded:
    next_allowed: float
    suppressed: int = 0


@dataclass
class AlertGate:
    min_severity: str = "medium"
    repeat_interval: float = 300.0
    clock: Callable[[], float] = time.monotonic
    max_fingerprints: int = 100_000
    _folded: dict[str, _Folded] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.min_severity not in SEVERITY_RANK:
            raise ValueError(f"unknown severity {self.min_severity!r}")

    def admit(self, findings: Iterable[FindingRow]) -> list[AlertRow]:
        threshold = SEVERITY_RANK[self.min_severity]
        alerts: list[AlertRow] = []
        now = self.clock()
        for finding in findings:
            if SEVERITY_RANK[finding.severity] < threshold:
                continue
            fingerprint = fingerprint_of(finding)
            folded = self._folded.get(fingerprint)
            if folded is not None and now < folded.next_allowed:
                folded.suppressed += 1
                continue
            occurrences = 1 + (folded.suppressed if folded else 0)
            if len(self._folded) >= self.max_fingerprints:
                self._expire(now)
            self._folded[fingerprint] = _Folded(next_allowed=now + self.repeat_interval)
            alerts.append(_alert(finding, fingerprint, occurrences))
        return alerts

    def _expire(self, now: float) -> None:
        expired = [k for k, v in self._folded.items() if v.next_allowed <= now]
        for key in expired or list(self._folded)[: len(self._folded) // 2]:
            del self._folded[key]


def _alert(finding: FindingRow, fingerprint: str, occurrences: int) -> AlertRow:
    subject = finding.model_id or finding.principal_id or "-"
    return AlertRow(
        alert_id=hashlib.sha256(f"{fingerprint}:{finding.finding_id}".encode()).hexdigest()[:24],
        ts=finding.ts,
        fired_at=datetime.now(UTC),
        fingerprint=fingerprint,
        severity=finding.severity,
        title=f"[{finding.severity.upper()}] {finding.detector_or_rule} on {subject}",
        summary=finding.message,
        stage=finding.stage,
        detector_or_rule=finding.detector_or_rule,
        model_id=finding.model_id,
        principal_id=finding.principal_id,
        event_id=finding.event_id,
        occurrences=occurrences,
    )
