"""What a receiver is asked to deliver: a snapshot of one alert group at one moment.

A notification is self-contained (it is journaled to disk and may be delivered
after a restart), so it carries copies of its alerts, not references. Its
``kind`` tells a receiver what changed, which lets Slack keep one thread per group:

- ``firing``: the group's first message (Slack: a new message that starts the thread)
- ``update``: counts, acknowledgement or silencing changed (Slack: the first message
  is edited in place, nobody is pinged)
- ``changed``: alerts joined or resolved (Slack: a reply in the thread)
- ``repeat``: still firing and unacknowledged after ``repeat_interval`` (a reply)
- ``resolved``: every alert of the group resolved (a reply; the group is closed)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import orjson

from schemas import severity_rank

NotificationKind = Literal["firing", "update", "changed", "repeat", "resolved"]
KINDS: tuple[NotificationKind, ...] = ("firing", "update", "changed", "repeat", "resolved")


@dataclass(frozen=True)
class AlertSnapshot:
    alert_id: str
    fingerprint: str
    state: str
    severity: str
    title: str
    summary: str
    labels: dict[str, str]
    first_seen: datetime
    last_seen: datetime
    occurrences: int
    new_occurrences: int
    """Occurrences since the group's previous notification."""
    joined: bool = False
    """First time this alert appears in the group's notifications."""
    runbook_url: str = ""
    evidence_query: str = ""
    controls: tuple[str, ...] = ()
    acked_by: str = ""


@dataclass(frozen=True)
class Notification:
    notification_id: str
    group_id: str
    receiver: str
    kind: NotificationKind
    group_labels: dict[str, str]
    alerts: tuple[AlertSnapshot, ...]
    created_at: datetime
    window_seconds: float
    """Time since the group's previous notification (or since it formed)."""
    resolve_timeout: float
    seq: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> str:
        return "resolved" if self.kind == "resolved" else "firing"

    @property
    def active(self) -> tuple[AlertSnapshot, ...]:
        return tuple(a for a in self.alerts if a.state in ("firing", "acknowledged"))

    @property
    def severity(self) -> str:
        shown = self.active or self.alerts
        return max((a.severity for a in shown), key=severity_rank, default="info")

    @property
    def acked_by(self) -> str:
        """Who acknowledged, when every active alert of the group is acknowledged."""
        acked = {a.acked_by for a in self.active}
        return acked.pop() if len(acked) == 1 and "" not in acked else ""

    def headline(self) -> str:
        if len(self.alerts) == 1:
            title = self.alerts[0].title
        else:
            scope = " ".join(f"{k}={v}" for k, v in self.group_labels.items()) or "all alerts"
            title = f"[{self.severity.upper()}] {len(self.active) or len(self.alerts)} alerts: {scope}"
        return f"[RESOLVED] {title}" if self.kind == "resolved" else title

    def folded(self) -> list[str]:
        """One sentence per alert that recurred since the previous notification."""
        return [
            f"{a.new_occurrences} more {a.labels.get('rule', 'default-deny')} findings on "
            f"{a.labels.get('model') or a.labels.get('principal') or '-'} in the last "
            f"{human_duration(self.window_seconds)} ({a.occurrences} in total)"
            for a in self.alerts
            if a.new_occurrences and not a.joined
        ]

    def to_json(self) -> bytes:
        return orjson.dumps(self)  # dataclasses natively: asdict copied every alert first

    @classmethod
    def from_json(cls, data: bytes | str) -> Notification:
        raw = orjson.loads(data)
        alerts = tuple(
            AlertSnapshot(
                **{
                    **a,
                    "first_seen": datetime.fromisoformat(a["first_seen"]),
                    "last_seen": datetime.fromisoformat(a["last_seen"]),
                    "controls": tuple(a["controls"]),
                }
            )
            for a in raw["alerts"]
        )
        return cls(**{**raw, "alerts": alerts, "created_at": datetime.fromisoformat(raw["created_at"])})


def human_duration(seconds: float) -> str:
    """Durations as people say them.

    >>> human_duration(300), human_duration(90), human_duration(7200), human_duration(4)
    ('5 min', '1 min 30 s', '2 h', '4 s')
    """
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{hours} h" if hours else "", f"{minutes} min" if minutes else "", f"{secs} s" if secs else ""]
    return " ".join(p for p in parts if p)
