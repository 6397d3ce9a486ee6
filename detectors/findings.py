"""What a detector says, and the finding row it becomes.

A ``Signal`` is a detector's statement about one key: which rule fired, about what
(``subject``: a feature, a segment, a digest), how severe, and the details that
prove it. ``finding_row`` turns it into a ``findings`` row with the controls it
evidences (``controls.yaml``) and a stable id, so a replayed event yields the same
finding id and the store's ReplacingMergeTree keeps one copy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import yaml

import schemas
from schemas import Severity, Subject
from schemas.records import FindingRow

CONTROLS_FILE = Path(__file__).resolve().parent / "controls.yaml"
STAGE = "detector"


@dataclass(frozen=True, slots=True)
class Signal:
    rule: str
    subject: str
    severity: Severity
    message: str
    details: dict[str, Any] = field(default_factory=dict)


@cache
def controls_by_rule() -> dict[str, tuple[str, ...]]:
    """The rule -> control ids mapping shipped in ``controls.yaml``."""
    raw = yaml.safe_load(CONTROLS_FILE.read_text(encoding="utf-8"))
    return {rule: tuple(ids) for rule, ids in raw.items()}


def finding_row(signal: Signal, *, event_id: str, ts: datetime, subject: Subject) -> FindingRow:
    details = {**signal.details, "controls": list(controls_by_rule().get(signal.rule, ()))}
    return schemas.finding_row(
        event_id=event_id,
        ts=ts,
        stage=STAGE,
        rule=signal.rule,
        severity=signal.severity,
        message=signal.message,
        details=details,
        subject=subject,
        discriminator=signal.subject,
    )
