"""Rows the pipeline produces, one NamedTuple per ClickHouse table.

Field order is column order (sinks/ddl); the sink inserts ``Record._fields`` as the
column list, so a field added here without a migration fails loudly at start-up
instead of writing into the wrong column.
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import NamedTuple

from schemas.severity import Severity


class EventRow(NamedTuple):
    event_id: str
    ts: datetime
    received_at: datetime
    type: str
    source: str
    principal_id: str
    principal_kind: str
    roles: list[str]
    action: str
    resource_kind: str
    resource_id: str
    model_id: str
    verified: bool
    verify_reason: str
    key_id: str
    features: dict[str, float]
    payload: str
    signature: str
    topic: str
    partition: int
    offset: int
    token_status: str
    trace_id: str
    span_id: str


class DecisionRow(NamedTuple):
    event_id: str
    ts: datetime
    principal_id: str
    action: str
    resource_kind: str
    resource_id: str
    model_id: str
    decision: str
    policy_ids: list[str]
    bundle_revision: str
    verified: bool
    controls: list[str]
    principal_type: str
    roles: list[str]
    resource_type: str
    facts: str
    errors: list[str]
    topic: str
    partition: int
    offset: int


class FindingRow(NamedTuple):
    """Made by ``schemas.findings.finding_row`` only.

    The subject columns (model, principal, resource, key) are what alert
    fingerprints are made of. Columns added after the first release have defaults,
    so rows written before them (a decision API journal, an older worker's alert on
    ``ai.alerts``) read back with the defaults.
    """

    finding_id: str
    ts: datetime
    event_id: str
    model_id: str
    principal_id: str
    stage: str
    detector_or_rule: str
    severity: Severity
    message: str
    details: str
    resource_kind: str = ""
    resource_id: str = ""
    key_id: str = ""
    """The signing key the event named (the one that failed, for an identity finding)."""


class AlertRow(NamedTuple):
    alert_id: str
    ts: datetime
    fired_at: datetime
    fingerprint: str
    severity: str
    title: str
    summary: str
    stage: str
    detector_or_rule: str
    model_id: str
    principal_id: str
    event_id: str
    occurrences: int
    resource_kind: str = ""
    resource_id: str = ""
    key_id: str = ""


class RejectedRow(NamedTuple):
    rejected_id: str
    received_at: datetime
    topic: str
    partition: int
    offset: int
    key: str
    code: str
    reason: str
    raw_base64: str
    size: int
    headers: list[tuple[str, str]]
    """Kafka headers as they arrived, each value as ``header_text`` stores it."""


_BASE64 = "base64:"


def header_text(value: bytes | None) -> str:
    """A Kafka header value as a ``String`` column keeps it: UTF-8 text as it is, other
    bytes (and text that would read as this encoding) as ``base64:`` and their base64."""
    raw = value or b""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and not text.startswith(_BASE64):
        return text
    return _BASE64 + base64.b64encode(raw).decode()


def header_bytes(text: str) -> bytes:
    """The bytes ``header_text`` was given."""
    if text.startswith(_BASE64):
        return base64.b64decode(text[len(_BASE64) :])
    return text.encode("utf-8")
