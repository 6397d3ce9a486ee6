"""Rows of the two audit tables, one NamedTuple per table (field order is column order).

``audit_ledger`` holds one entry per decision, finding and alert: the record itself
in canonical JSON, its hash, and the chain hash that links it to the entry before it
in its stream. ``audit_checkpoints`` holds the signed heads of each stream. Both are
plain MergeTree tables (sinks/ddl/0002_audit.sql): nothing is merged away, so a
forged or duplicated row stays visible to the verifier.
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple


class LedgerRow(NamedTuple):
    stream: str
    seq: int
    kind: str
    record_id: str
    event_id: str
    source_offset: int
    record: str
    record_hash: str
    prev_hash: str
    chain_hash: str
    appended_at: datetime


class CheckpointRow(NamedTuple):
    stream: str
    seq: int
    chain_hash: str
    created_at: datetime
    bundle_revision: str
    key_id: str
    signature: str
