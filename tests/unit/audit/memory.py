"""In-memory stand-ins for the store, and batches shaped like the pipeline's.

``MemoryStore`` keeps what an ``AuditedStore`` would insert and answers both the
ledger's recovery questions and the verifier's reads, so ledger, verifier and proof
logic are tested without ClickHouse. Rows are built from the real record types with
neutral defaults, so the tests follow those types as they grow.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple, get_origin, get_type_hints

from audit.canonical import timestamp
from audit.checkpoint import Checkpoint
from audit.ledger import CHECKPOINT_TABLE, LEDGER_TABLE, Head, Ledger, Prepared
from audit.source import Entry
from schemas.audit import LedgerRow
from schemas.records import AlertRow, DecisionRow, EventRow, FindingRow

T0 = datetime(2026, 11, 26, 9, 30, tzinfo=UTC)


def make(row_type: type[NamedTuple], **values: Any) -> Any:
    hints = get_type_hints(row_type)
    for name in row_type._fields:
        if name not in values:
            values[name] = _default(hints[name])
    return row_type(**values)


def _default(hint: Any) -> Any:
    origin = get_origin(hint)
    if origin is list:
        return []
    if origin is dict:
        return {}
    return {datetime: T0, str: "", int: 0, bool: False, float: 0.0}.get(hint, "")


def batch(
    topic: str,
    partition: int,
    offsets: Sequence[int],
    *,
    denied: Sequence[int] = (),
    alerted: Sequence[int] = (),
    revision: str = "rev-1",
) -> dict[str, list[Any]]:
    """Tables of one batch: a decision per event, a finding and maybe an alert per denial."""
    tables: dict[str, list[Any]] = {
        "events": [],
        "decisions": [],
        "findings": [],
        "alerts": [],
        "rejected": [],
    }
    for offset in offsets:
        event_id = f"{topic}-{partition}-{offset}"
        tables["events"].append(
            make(EventRow, event_id=event_id, topic=topic, partition=partition, offset=offset)
        )
        decision = "deny" if offset in denied else "allow"
        tables["decisions"].append(
            make(
                DecisionRow, event_id=event_id, decision=decision, bundle_revision=revision, policy_ids=["p1"]
            )
        )
        if offset in denied:
            finding_id = f"f-{event_id}"
            tables["findings"].append(
                make(FindingRow, finding_id=finding_id, event_id=event_id, severity="high")
            )
            if offset in alerted:
                tables["alerts"].append(
                    make(AlertRow, alert_id=f"a-{event_id}", event_id=event_id, occurrences=1, fired_at=T0)
                )
    return tables


class MemoryStore:
    """What reached the store, in insertion order; readable as ClickHouse would return it."""

    def __init__(self) -> None:
        self.ledger: list[LedgerRow] = []
        self.checkpoints: list[Checkpoint] = []
        self.tables: dict[str, list[Any]] = {}
        self.fail_after: str | None = None
        """Table whose insert raises (after the ones before it were inserted)."""

    def write(self, tables: dict[str, list[Any]]) -> None:
        for name, rows in tables.items():
            if name == self.fail_after:
                raise ConnectionError(f"insert into {name} failed")
            if name == LEDGER_TABLE:
                self.ledger.extend(rows)
            elif name == CHECKPOINT_TABLE:
                self.checkpoints.extend(Checkpoint.from_row(r) for r in rows)
            else:
                self.tables.setdefault(name, []).extend(rows)

    def store(self, ledger: Ledger, tables: dict[str, list[Any]]) -> Prepared:
        """What ``AuditedStore.write`` does, against this store."""
        prepared = ledger.prepare(tables)
        try:
            self.write(prepared.tables)
        except ConnectionError:
            ledger.forget(prepared.streams)
            raise
        ledger.commit(prepared)
        return prepared

    # LedgerReader
    def head(self, stream: str) -> Head | None:
        rows = [r for r in self.ledger if r.stream == stream]
        if not rows:
            return None
        last = max(rows, key=lambda r: (r.seq, r.chain_hash))
        return Head(last.seq, last.chain_hash)

    def record_keys(self, stream: str, after_seq: int) -> list[tuple[str, str, str]]:
        return [
            (r.kind, r.record_id, r.record_hash)
            for r in self.ledger
            if r.stream == stream and r.seq > after_seq
        ]

    def latest_checkpoints(self, stream: str, limit: int) -> list[Checkpoint]:
        mine = [c for c in self.checkpoints if c.stream == stream]
        return sorted(mine, key=lambda c: c.seq, reverse=True)[:limit]

    # LedgerSource
    def streams(self) -> list[str]:
        return sorted({r.stream for r in self.ledger} | {c.stream for c in self.checkpoints})

    def checkpoints_of(self, stream: str) -> list[Checkpoint]:
        return sorted((c for c in self.checkpoints if c.stream == stream), key=lambda c: c.seq)

    def seq_range(self, stream: str, since: datetime | None, until: datetime | None) -> tuple[int, int]:
        seqs = [
            r.seq
            for r in self.ledger
            if r.stream == stream
            and (since is None or r.appended_at >= since)
            and (until is None or r.appended_at < until)
        ]
        return (min(seqs), max(seqs)) if seqs else (0, 0)

    def entries(self, stream: str, first: int, last: int | None) -> Iterator[Entry]:
        rows = [
            r
            for r in self.ledger
            if r.stream == stream and r.seq >= first and (last is None or r.seq <= last)
        ]
        for r in sorted(rows, key=lambda r: r.seq):  # stable: ties keep insertion order
            yield entry_of(r)

    def locate(self, event_id: str) -> list[tuple[str, int, str]]:
        return sorted((r.stream, r.seq, r.record_id) for r in self.ledger if r.event_id == event_id)

    def query(self, sql: str, parameters: dict[str, Any]) -> list[tuple[Any, ...]]:
        raise NotImplementedError("SQL is exercised by the integration tests")

    def rows(self, sql: str, parameters: dict[str, Any]) -> Iterator[tuple[Any, ...]]:
        raise NotImplementedError("SQL is exercised by the integration tests")


class SourceView:
    """``MemoryStore`` under the ``LedgerSource`` method names."""

    def __init__(self, store: MemoryStore) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def checkpoints(self, stream: str) -> list[Checkpoint]:
        return self._store.checkpoints_of(stream)


def entry_of(row: LedgerRow) -> Entry:
    return Entry(
        row.seq,
        row.kind,
        row.record_id,
        row.event_id,
        row.source_offset,
        row.record,
        row.record_hash,
        row.prev_hash,
        row.chain_hash,
        timestamp(row.appended_at),
    )
