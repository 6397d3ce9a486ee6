"""The append-only ledger: every decision, finding and alert becomes a chained entry.

Entries are grouped in streams, one per source partition (``topic:partition``), so
workers that own different partitions never coordinate: each keeps the head of its
streams in memory and recovers it from the store the first time it sees a stream
(after a start, a rebalance or a failed write).

Writing is two-phase so a failed store write changes nothing: ``prepare`` turns a
batch's tables into the same tables plus ledger and checkpoint rows, without
touching the heads; the caller stores them in one write and only then ``commit``s.
A record is identified by its kind, id and content hash: a replayed batch
(at-least-once delivery) finds its records, unchanged, in the recent window of its
stream and adds nothing, not even a second copy to the tables. A record whose
content differs from what was entered before (the next version of an alert with
its running count, or a record re-derived differently on replay) is a new version:
it is entered and stored like any other, so the ledger holds every version the
tables were given, and the tables' latest version is always one the ledger holds.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, NamedTuple, Protocol

from audit.canonical import (
    canonical_record_bytes,
    chain_hash,
    genesis,
    parse_timestamp,
    sha256_hex,
    timestamp,
)
from audit.checkpoint import Checkpoint
from audit.keys import Signer, TrustedKeys
from schemas.audit import LedgerRow

log = logging.getLogger(__name__)

LEDGER_TABLE = "audit_ledger"
CHECKPOINT_TABLE = "audit_checkpoints"
RECORD_TABLES: dict[str, tuple[str, str]] = {
    "decisions": ("decision", "event_id"),
    "findings": ("finding", "finding_id"),
    "alerts": ("alert", "alert_id"),
}
"""Table -> (entry kind, the column that identifies a record)."""
DEDUPE_WINDOW = 50_000
"""Record versions remembered per stream: far more than a crash can leave unacknowledged
(offsets are committed every few seconds)."""


class LedgerError(RuntimeError):
    """A batch cannot be entered in the ledger; the batch must not be committed."""


def stream_name(topic: str, partition: int) -> str:
    return f"{topic}:{partition}"


class Head(NamedTuple):
    """The last entry of a stream as recorded in the store."""

    seq: int
    chain_hash: str


class LedgerReader(Protocol):
    """What recovery needs from the store."""

    def head(self, stream: str) -> Head | None: ...

    def record_keys(self, stream: str, after_seq: int) -> Iterable[tuple[str, str, str]]:
        """(kind, record id, record hash) of the entries after ``after_seq``."""
        ...

    def latest_checkpoints(self, stream: str, limit: int) -> list[Checkpoint]:
        """The stream's checkpoints with the highest sequence numbers, highest first."""
        ...


class NoHistory:
    """A store with no ledger yet: every stream starts at its genesis.

    For measuring or rehearsing the ledger on its own, without a store behind it.
    """

    def head(self, stream: str) -> Head | None:
        return None

    def record_keys(self, stream: str, after_seq: int) -> Iterable[tuple[str, str, str]]:
        return ()

    def latest_checkpoints(self, stream: str, limit: int) -> list[Checkpoint]:
        return []


@dataclass(frozen=True, slots=True)
class StreamState:
    seq: int
    chain_hash: str
    covered_seq: int
    """Last sequence number under a signed checkpoint."""
    uncovered_since: float | None
    """Wall-clock time the oldest entry not under a checkpoint was appended."""
    bundle_revision: str


class RecentKeys:
    """The last ``limit`` record keys of a stream, for replay dedupe in constant memory."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._order: deque[str] = deque()
        self._members: set[str] = set()

    def __contains__(self, key: object) -> bool:
        return key in self._members

    def __len__(self) -> int:
        return len(self._members)

    def add(self, key: str) -> None:
        if key in self._members:
            return
        self._order.append(key)
        self._members.add(key)
        while len(self._order) > self.limit:
            self._members.discard(self._order.popleft())


def record_key(kind: str, record_id: str, digest: str) -> str:
    return f"{kind}\x1f{record_id}\x1f{digest}"


@dataclass
class Prepared:
    """A batch made ready for one store write; nothing in the ledger changed yet."""

    tables: dict[str, Sequence[Any]]
    states: dict[str, StreamState] = field(default_factory=dict)
    new_keys: dict[str, list[str]] = field(default_factory=dict)
    checkpoints: list[Checkpoint] = field(default_factory=list)
    recovered: list[Checkpoint] = field(default_factory=list)
    """Checkpoints found at recovery, exported again in case a crash cut their export."""
    entries: int = 0
    replayed: int = 0

    @property
    def streams(self) -> list[str]:
        return list(self.states)


class Ledger:
    def __init__(
        self,
        reader: LedgerReader,
        signer: Signer,
        checkpoint_entries: int = 1000,
        checkpoint_seconds: float = 60.0,
        *,
        shared_store: bool = False,
        window: int = DEDUPE_WINDOW,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``shared_store``: other workers write to the same store, so a stream may have
        moved here from another worker since this one last wrote it; its head is then
        re-read before every batch instead of trusted from memory."""
        self.reader = reader
        self.signer = signer
        self.checkpoint_entries = checkpoint_entries
        self.checkpoint_seconds = checkpoint_seconds
        self.shared_store = shared_store
        self.window = window
        self.clock = clock
        self._own_key = TrustedKeys([signer.public_key])
        self._states: dict[str, StreamState] = {}
        self._recent: dict[str, RecentKeys] = {}

    def prepare(self, tables: Mapping[str, Sequence[Any]]) -> Prepared:
        """The batch's tables plus its ledger and checkpoint rows; raises ``LedgerError``."""
        prepared = Prepared({name: list(rows) for name, rows in tables.items()})
        routed = _route(tables)
        if not routed:
            return prepared
        now = self.clock()
        appended_at = parse_timestamp(timestamp(datetime.fromtimestamp(now, UTC)))
        appended = timestamp(appended_at)
        kept: dict[str, list[Any]] = {name: [] for name in RECORD_TABLES if name in tables}
        ledger_rows: list[LedgerRow] = []
        for stream, records in routed.items():
            state = self._current(stream, prepared)
            recent = self._recent[stream]
            seen: list[str] = []
            seen_set: set[str] = set()
            seq, prev, revision = state.seq, state.chain_hash, state.bundle_revision
            for table, kind, record_id, row, offset in records:
                encoded = canonical_record_bytes(row)
                digest = sha256_hex(encoded)
                key = record_key(kind, record_id, digest)
                if key in recent or key in seen_set:
                    prepared.replayed += 1
                    continue
                seen.append(key)
                seen_set.add(key)
                kept[table].append(row)
                record = encoded.decode()
                event_id = str(row.event_id)
                chain = chain_hash(prev, stream, kind, record_id, event_id, offset, digest, appended)
                seq += 1
                ledger_rows.append(
                    LedgerRow(
                        stream,
                        seq,
                        kind,
                        record_id,
                        event_id,
                        offset,
                        record,
                        digest,
                        prev,
                        chain,
                        appended_at,
                    )
                )
                prev = chain
                if kind == "decision":
                    revision = str(getattr(row, "bundle_revision", revision))
            if seen:
                state = replace(
                    state,
                    seq=seq,
                    chain_hash=prev,
                    bundle_revision=revision,
                    uncovered_since=state.uncovered_since if state.uncovered_since is not None else now,
                )
            prepared.states[stream] = state
            prepared.new_keys[stream] = seen
        prepared.tables.update(kept)
        prepared.tables[LEDGER_TABLE] = ledger_rows
        prepared.entries = len(ledger_rows)
        self._checkpoint_due(prepared, now)
        return prepared

    def due(self) -> Prepared:
        """Checkpoints owed by time alone (no new entries needed): for a periodic timer."""
        prepared = Prepared({})
        prepared.states = {s: st for s, st in self._states.items() if st.seq > st.covered_seq}
        self._checkpoint_due(prepared, self.clock())
        prepared.states = {c.stream: prepared.states[c.stream] for c in prepared.checkpoints}
        return prepared

    def closing(self) -> Prepared:
        """A checkpoint for every stream with uncovered entries: on shutdown."""
        prepared = Prepared({})
        for stream, state in self._states.items():
            if state.seq > state.covered_seq:
                prepared.checkpoints.append(self._sign(stream, state))
                prepared.states[stream] = replace(state, covered_seq=state.seq, uncovered_since=None)
        prepared.tables[CHECKPOINT_TABLE] = [c.to_row() for c in prepared.checkpoints]
        return prepared

    def commit(self, prepared: Prepared) -> None:
        """The prepared write is stored: advance the heads."""
        self._states.update(prepared.states)
        for stream, keys in prepared.new_keys.items():
            recent = self._recent[stream]
            for key in keys:
                recent.add(key)

    def forget(self, streams: Iterable[str]) -> None:
        """A write failed part-way: what reached the store is unknown, so re-read it next time."""
        for stream in streams:
            self._states.pop(stream, None)
            self._recent.pop(stream, None)

    def _checkpoint_due(self, prepared: Prepared, now: float) -> None:
        for stream, state in list(prepared.states.items()):
            uncovered = state.seq - state.covered_seq
            if uncovered <= 0:
                continue
            aged = (
                state.uncovered_since is not None and now - state.uncovered_since >= self.checkpoint_seconds
            )
            if uncovered >= self.checkpoint_entries or aged:
                prepared.checkpoints.append(self._sign(stream, state))
                prepared.states[stream] = replace(state, covered_seq=state.seq, uncovered_since=None)
        prepared.tables[CHECKPOINT_TABLE] = [c.to_row() for c in prepared.checkpoints]

    def _sign(self, stream: str, state: StreamState) -> Checkpoint:
        return Checkpoint.sign(self.signer, stream, state.seq, state.chain_hash, state.bundle_revision)

    def _current(self, stream: str, prepared: Prepared) -> StreamState:
        state = self._states.get(stream)
        if state is not None and self.shared_store:
            head = self.reader.head(stream)
            if (head.seq if head else 0) != state.seq:
                log.info("stream %s was written elsewhere since; re-reading its head", stream)
                self.forget([stream])
                state = None
        if state is None:
            state = self._recover(stream, prepared)
        return state

    def _recover(self, stream: str, prepared: Prepared) -> StreamState:
        head = self.reader.head(stream) or Head(0, genesis(stream))
        checkpoint = None
        for candidate in self.reader.latest_checkpoints(stream, limit=10):
            # One signed by an earlier key (before a rotation) is for the verifier to judge.
            if candidate.key_id != self.signer.key_id or candidate.verify(self._own_key):
                checkpoint = candidate
                break
            log.error(
                "audit stream %s: stored checkpoint at seq %d does not verify under key %s; "
                "run `vigil audit verify`",
                stream,
                candidate.seq,
                self.signer.key_id,
            )
        covered = checkpoint.seq if checkpoint else 0
        if head.seq < covered:
            log.error(
                "audit stream %s ends at seq %d but was checkpointed at seq %d: entries were deleted; "
                "run `vigil audit verify`",
                stream,
                head.seq,
                covered,
            )
        recent = RecentKeys(self.window)
        for kind, record_id, digest in self.reader.record_keys(stream, head.seq - self.window):
            recent.add(record_key(kind, record_id, digest))
        self._recent[stream] = recent
        if checkpoint is not None:
            prepared.recovered.append(checkpoint)
        if head.seq:
            log.info("audit stream %s resumes at seq %d", stream, head.seq)
        return StreamState(
            seq=head.seq,
            chain_hash=head.chain_hash,
            covered_seq=min(covered, head.seq),
            uncovered_since=self.clock() if head.seq > covered else None,
            bundle_revision=checkpoint.bundle_revision if checkpoint else "",
        )


_Routed = tuple[str, str, str, Any, int]
"""(table, kind, record id, row, source offset)"""


def _route(tables: Mapping[str, Sequence[Any]]) -> dict[str, list[_Routed]]:
    """Records by stream, each stream in source order: per event its decision, findings, alerts."""
    if not any(tables.get(name) for name in RECORD_TABLES):
        return {}
    by_event: dict[str, list[tuple[str, str, str, Any]]] = {}
    for table, (kind, id_column) in RECORD_TABLES.items():
        for row in tables.get(table, ()):
            by_event.setdefault(row.event_id, []).append((table, kind, str(getattr(row, id_column)), row))
    routed: dict[str, list[_Routed]] = {}
    for event in tables.get("events", ()):
        records = by_event.pop(event.event_id, None)
        if records is None:
            continue
        stream = stream_name(event.topic, event.partition)
        routed.setdefault(stream, []).extend((t, k, i, r, int(event.offset)) for t, k, i, r in records)
    if by_event:
        missing = ", ".join(sorted(by_event)[:5])
        raise LedgerError(f"records of events not in their batch cannot be placed in a stream: {missing}")
    return routed
