"""What a detector says, and the finding row it becomes.

A ``Signal`` is a detector's statement about one key: which rule fired, about what
(``subject``: a feature, a segment, a digest), how severe, and the details that
prove it. ``finding_row`` turns it into a ``findings`` row with the controls it
evidences (``controls.yaml``) and a stable id, so a replayed event yields the same
finding id and the store's ReplacingMergeTree keeps one copy.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import orjson
import yaml

from schemas.records import FindingRow

CONTROLS_FILE = Path(__file__).resolve().parent / "controls.yaml"
STAGE = "detector"


@dataclass(frozen=True, slots=True)
class Signal:
    rule: str
    subject: str
    severity: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)


@cache
def controls_by_rule() -> dict[str, tuple[str, ...]]:
    """The rule -> control ids mapping shipped in ``controls.yaml``."""
    raw = yaml.safe_load(CONTROLS_FILE.read_text(encoding="utf-8"))
    return {rule: tuple(ids) for rule, ids in raw.items()}


def finding_row(
    signal: Signal, *, event_id: str, ts: datetime, model_id: str, principal_id: str
) -> FindingRow:
    identity = f"{event_id}\x1f{STAGE}\x1f{signal.rule}\x1f{signal.subject}"
    details = {**signal.details, "controls": list(controls_by_rule().get(signal.rule, ()))}
    return FindingRow(
        finding_id=hashlib.sha256(identity.encode()).hexdigest()[:24],
        ts=ts,
        event_id=event_id,
        model_id=model_id,
        principal_id=principal_id,
        stage=STAGE,
        detector_or_rule=signal.rule,
        severity=signal.severity,
        message=signal.message,
        details=orjson.dumps(details, option=orjson.OPT_NON_STR_KEYS).decode(),
    )
