"""Silences: matchers plus a time window during which matching alerts do not notify.

Silences live in ClickHouse (``silences``), so every worker honours the same
ones; each worker re-reads them every few seconds. A silenced alert is still
tracked, counted and recorded (``alert_states``, state ``silenced``, with the
silence id); when the silence ends while the alert still fires, it notifies.
Expiring a silence writes a new version whose window ends now.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from alerting.matchers import Matcher, match_all, parse_matchers
from alerting.records import SilenceRow


@dataclass(frozen=True)
class Silence:
    silence_id: str
    matchers: tuple[Matcher, ...]
    starts_at: datetime
    ends_at: datetime
    created_by: str
    reason: str
    updated_at: datetime

    def active(self, now: datetime) -> bool:
        return self.starts_at <= now < self.ends_at

    def matches(self, labels: Mapping[str, str]) -> bool:
        return match_all(self.matchers, labels)

    def expired(self, now: datetime) -> Silence:
        return replace(self, ends_at=min(self.ends_at, now), updated_at=now)

    def row(self) -> SilenceRow:
        return SilenceRow(
            silence_id=self.silence_id,
            matchers=[str(m) for m in self.matchers],
            starts_at=self.starts_at,
            ends_at=self.ends_at,
            created_by=self.created_by,
            reason=self.reason,
            updated_at=self.updated_at,
        )

    @classmethod
    def from_row(cls, row: SilenceRow) -> Silence:
        return cls(
            silence_id=row.silence_id,
            matchers=parse_matchers(row.matchers),
            starts_at=row.starts_at,
            ends_at=row.ends_at,
            created_by=row.created_by,
            reason=row.reason,
            updated_at=row.updated_at,
        )


def new_silence(
    matchers: Iterable[Matcher], duration: timedelta, reason: str, created_by: str, now: datetime
) -> Silence:
    parsed = tuple(matchers)
    if not parsed:
        raise ValueError("a silence needs at least one matcher (it would silence everything)")
    if duration <= timedelta(0):
        raise ValueError("a silence must last longer than zero")
    if not reason.strip():
        raise ValueError("say why: a silence needs a reason")
    return Silence(
        silence_id=secrets.token_hex(6),
        matchers=parsed,
        starts_at=now,
        ends_at=now + duration,
        created_by=created_by,
        reason=reason.strip(),
        updated_at=now,
    )


def silencing(silences: Iterable[Silence], labels: Mapping[str, str], now: datetime) -> str:
    """The id of the first active silence matching ``labels``, or ``""``."""
    for silence in silences:
        if silence.active(now) and silence.matches(labels):
            return silence.silence_id
    return ""
