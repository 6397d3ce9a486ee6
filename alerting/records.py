"""Rows the alert manager writes, one NamedTuple per ClickHouse table (sinks/ddl/0003).

Field order is column order, as for the pipeline's rows in ``schemas.records``.
Each table is a ReplacingMergeTree keyed by the row's id with ``updated_at`` (or
``acked_at``) as the version, so the ``*_unique`` views show the latest state of
every alert, silence, acknowledgement and notification.
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple


class AlertStateRow(NamedTuple):
    """One version of an alert instance: its labels, counts and where it stands."""

    alert_id: str
    fingerprint: str
    group_ids: list[str]
    receivers: list[str]
    state: str
    severity: str
    title: str
    summary: str
    labels: dict[str, str]
    runbook_url: str
    evidence_query: str
    controls: list[str]
    first_seen: datetime
    last_seen: datetime
    occurrences: int
    acked_by: str
    suppressed_by: str
    updated_at: datetime


class SilenceRow(NamedTuple):
    silence_id: str
    matchers: list[str]
    starts_at: datetime
    ends_at: datetime
    created_by: str
    reason: str
    updated_at: datetime


class AckRow(NamedTuple):
    """An acknowledgement of an alert instance or a whole alert group."""

    target_id: str
    acked_by: str
    via: str
    note: str
    acked_at: datetime


class NotificationRow(NamedTuple):
    """One notification owed to one receiver integration, and how its delivery went."""

    notification_id: str
    receiver: str
    group_id: str
    kind: str
    seq: int
    status: str
    attempts: int
    last_error: str
    headline: str
    alert_ids: list[str]
    created_at: datetime
    updated_at: datetime
