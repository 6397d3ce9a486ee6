"""Recompute the ledger and its checkpoints and name the first place anything changed.

Each stream is read once, in sequence order. Every entry is checked on its own (its
record against its record hash, its fields against its chain hash) and against its
neighbour (its ``prev_hash`` must be the chain hash of the entry before). The
links, not the sequence numbers, define the true order, so when a link breaks the
verifier looks ahead a bounded window to tell what happened: entries missing
(deleted), entries that belong to no chain (inserted), entries present but in the
wrong places (reordered), or an entry rewritten in place (modified). Signed
checkpoints, from the store and from the copies kept outside it, pin the chain at
their sequence numbers; a checkpoint beyond the last entry reveals a deleted tail.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from hashlib import sha256
from typing import Any

from audit.canonical import chain_hash, genesis, timestamp
from audit.checkpoint import Checkpoint
from audit.keys import TrustedKeys
from audit.source import Entry, LedgerSource

LOOKAHEAD = 10_000
"""Entries examined past a broken link to classify it; bounds memory on the failure path."""
MAX_PROBLEMS_PER_STREAM = 20

MODIFIED = "modified"
DELETED = "deleted"
INSERTED = "inserted"
REORDERED = "reordered"
UNLINKED = "unlinked"
TRUNCATED = "truncated"
REWRITTEN = "rewritten"
FORGED_CHECKPOINT = "forged-checkpoint"
CHECKPOINT_DELETED = "checkpoint-deleted"
MISSING_TRAIL = "missing-trail"


@dataclass(frozen=True)
class Expected:
    """What an independent record says the trail holds, so a wiped trail cannot verify.

    A ledger, its checkpoints and its exports deleted together leave nothing that
    contradicts itself: an empty trail is consistent. Only a number kept elsewhere
    (a monitoring system's count of streams, the last checkpoint seq read from the
    ``ai.audit`` topic or a copy of the exports) tells that it was not always empty.
    """

    streams: int = 0
    """At least this many streams."""
    sequences: tuple[tuple[str, int], ...] = ()
    """(stream, seq): the stream's ledger reaches at least that seq."""
    allow_empty: bool = False
    """A store that has decided nothing yet: zero streams is then not a failure."""

    def problems(self, report: Report) -> list[Problem]:
        found: list[Problem] = []
        if not report.streams and not self.allow_empty and not self.streams and not self.sequences:
            found.append(
                Problem(
                    MISSING_TRAIL,
                    "ledger",
                    None,
                    "no stream, no entry and no checkpoint: nothing was verified. A wiped trail looks "
                    "like this; pass --allow-empty for a store that has decided nothing yet, or "
                    "--expect-streams / --expect-seq from an independent copy",
                )
            )
        if len(report.streams) < self.streams:
            found.append(
                Problem(
                    MISSING_TRAIL,
                    "ledger",
                    None,
                    f"{len(report.streams)} stream(s) found, at least {self.streams} expected",
                )
            )
        reached = {s.stream: s.last_seq for s in report.streams}
        for stream, seq in self.sequences:
            if reached.get(stream, 0) < seq:
                found.append(
                    Problem(
                        MISSING_TRAIL,
                        stream,
                        None,
                        f"the ledger reaches seq {reached.get(stream, 0)}, at least {seq} expected",
                    )
                )
        return found


@dataclass(frozen=True, slots=True)
class Problem:
    kind: str
    stream: str
    seq: int | None
    detail: str
    last_seq: int | None = None

    @property
    def where(self) -> str:
        if self.seq is None:
            return self.stream
        if self.last_seq is not None and self.last_seq != self.seq:
            return f"{self.stream} seq {self.seq}..{self.last_seq}"
        return f"{self.stream} seq {self.seq}"

    def __str__(self) -> str:
        return f"{self.kind}: {self.where}: {self.detail}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "stream": self.stream,
            "seq": self.seq,
            "last_seq": self.last_seq,
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class ExternalCheckpoint:
    """A checkpoint copy kept outside the store, or why it could not be read."""

    origin: str
    stream: str
    checkpoint: Checkpoint | None
    error: str = ""


@dataclass
class StreamReport:
    stream: str
    first_seq: int = 0
    last_seq: int = 0
    entries: int = 0
    checkpoints_stored: int = 0
    checkpoints_external: int = 0
    checkpoints_matched: int = 0
    covered_seq: int = 0
    problems: list[Problem] = field(default_factory=list)
    suppressed: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def uncovered(self) -> int:
        """Entries after the last checkpoint that matched: normal for a live stream."""
        return max(self.last_seq - self.covered_seq, 0) if self.entries else 0

    def add(self, problem: Problem) -> None:
        if len(self.problems) < MAX_PROBLEMS_PER_STREAM:
            self.problems.append(problem)
        else:
            self.suppressed += 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "stream": self.stream,
            "ok": self.ok,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "entries": self.entries,
            "checkpoints_stored": self.checkpoints_stored,
            "checkpoints_external": self.checkpoints_external,
            "checkpoints_matched": self.checkpoints_matched,
            "uncovered": self.uncovered,
            "problems": [p.as_dict() for p in self.problems],
            "problems_not_shown": self.suppressed,
        }


@dataclass
class Report:
    streams: list[StreamReport] = field(default_factory=list)
    elapsed: float = 0.0
    extra: list[Problem] = field(default_factory=list)
    """Problems outside any stream's walk (e.g. the tables cross-check)."""

    @property
    def problems(self) -> list[Problem]:
        return [p for s in self.streams for p in s.problems] + self.extra

    @property
    def ok(self) -> bool:
        return not self.problems and not any(s.suppressed for s in self.streams)

    @property
    def entries(self) -> int:
        return sum(s.entries for s in self.streams)

    @property
    def rate(self) -> float:
        return self.entries / self.elapsed if self.elapsed else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "entries": self.entries,
            "elapsed_seconds": round(self.elapsed, 3),
            "streams": [s.as_dict() for s in self.streams],
            "problems": [p.as_dict() for p in self.extra],
        }


def defect(stream: str, entry: Entry) -> str:
    """Why an entry contradicts itself, or "" when its hashes hold."""
    _, kind, record_id, event_id, offset, record, digest, prev, chain, appended_at = entry
    if sha256(record.encode()).hexdigest() != digest:
        return "its record does not match its record hash"
    if chain_hash(prev, stream, kind, record_id, event_id, offset, digest, appended_at) != chain:
        return "its fields do not match its chain hash"
    return ""


def _entries(count: int) -> str:
    return "1 entry is" if count == 1 else f"{count} entries are"


def describe(entry: Entry) -> str:
    return f"{entry.kind} {entry.record_id} (event {entry.event_id})"


class _Signed:
    """One checkpoint statement (seq, chain hash) and every place a valid copy was found."""

    def __init__(self, checkpoint: Checkpoint) -> None:
        self.checkpoint = checkpoint
        self.origins: list[str] = []

    def label(self) -> str:
        when = timestamp(self.checkpoint.created_at)
        return f"checkpoint at seq {self.checkpoint.seq} signed {when} ({', '.join(self.origins)})"


class Verifier:
    def __init__(
        self,
        source: LedgerSource,
        keys: TrustedKeys,
        external: Sequence[ExternalCheckpoint] = (),
    ) -> None:
        self.source = source
        self.keys = keys
        self.external = list(external)

    def run(
        self, stream: str | None = None, since: datetime | None = None, until: datetime | None = None
    ) -> Report:
        started = time.perf_counter()
        report = Report()
        streams = self.source.streams()
        streams += sorted({e.stream for e in self.external} - set(streams))
        for name in streams:
            if stream is None or name == stream:
                report.streams.append(self._stream(name, since, until))
        report.elapsed = time.perf_counter() - started
        return report

    def _stream(self, stream: str, since: datetime | None, until: datetime | None) -> StreamReport:
        report = StreamReport(stream)
        signed = self._signed(stream, report)
        start_seq, prev, end_seq = 1, genesis(stream), None
        if since is not None or until is not None:
            low, high = self.source.seq_range(stream, since, until)
            if not low:
                return report
            anchor = max((s for s in signed if s < low), default=None)
            if anchor is not None:
                start_seq, prev = anchor + 1, signed[anchor][0].checkpoint.chain_hash
            if until is not None:
                end_seq = min((s for s in signed if s >= high), default=high)
        report.covered_seq = start_seq - 1
        walk = _Walk(stream, self.source.entries(stream, start_seq, end_seq), start_seq, prev, signed, report)
        walk.run()
        report.last_seq = walk.last_seq
        beyond = [s for s in signed if s > walk.last_seq and (end_seq is None or s <= end_seq)]
        if beyond:
            furthest = signed[max(beyond)][0]
            report.add(
                Problem(
                    TRUNCATED,
                    stream,
                    walk.last_seq + 1,
                    f"the ledger ends at seq {walk.last_seq}, but the {furthest.label()} covers it: "
                    "the entries after the end were deleted",
                    last_seq=furthest.checkpoint.seq,
                )
            )
        return report

    def _signed(self, stream: str, report: StreamReport) -> dict[int, list[_Signed]]:
        """Checkpoints whose signatures hold, by seq; the rest become problems."""
        statements: dict[tuple[int, str], _Signed] = {}
        stored: set[tuple[int, str]] = set()
        for checkpoint in self.source.checkpoints(stream):
            report.checkpoints_stored += 1
            if self._forged(checkpoint, "audit_checkpoints", report):
                continue
            key = (checkpoint.seq, checkpoint.chain_hash)
            stored.add(key)
            statements.setdefault(key, _Signed(checkpoint)).origins.append("store")
        for copy in self.external:
            if copy.stream != stream:
                continue
            report.checkpoints_external += 1
            if copy.checkpoint is None:
                report.add(
                    Problem(FORGED_CHECKPOINT, stream, None, f"{copy.origin}: unreadable: {copy.error}")
                )
                continue
            if self._forged(copy.checkpoint, copy.origin, report):
                continue
            key = (copy.checkpoint.seq, copy.checkpoint.chain_hash)
            if key not in stored:
                stored.add(key)  # report each missing statement once
                report.add(
                    Problem(
                        CHECKPOINT_DELETED,
                        stream,
                        copy.checkpoint.seq,
                        f"the checkpoint exported to {copy.origin} is missing from "
                        "(or altered in) audit_checkpoints",
                    )
                )
            statements.setdefault(key, _Signed(copy.checkpoint)).origins.append(copy.origin)
        by_seq: dict[int, list[_Signed]] = {}
        for (seq, _), statement in sorted(statements.items()):
            by_seq.setdefault(seq, []).append(statement)
        return by_seq

    def _forged(self, checkpoint: Checkpoint, origin: str, report: StreamReport) -> bool:
        if checkpoint.verify(self.keys):
            return False
        if checkpoint.key_id not in self.keys.by_id:
            why = f"it names key {checkpoint.key_id}, which is not a trusted key"
        else:
            why = f"its signature does not verify under key {checkpoint.key_id}"
        report.add(
            Problem(FORGED_CHECKPOINT, report.stream, checkpoint.seq, f"checkpoint in {origin}: {why}")
        )
        return True


class _Lookahead:
    def __init__(self, rows: Iterator[Entry]) -> None:
        self._rows = rows
        self._buffer: deque[Entry] = deque()

    def peek(self, index: int = 0) -> Entry | None:
        buffer = self._buffer
        if index < len(buffer):
            return buffer[index]
        while len(buffer) <= index:
            row = next(self._rows, None)
            if row is None:
                return None
            buffer.append(row)
        return buffer[index]

    def pop(self) -> Entry:
        return self._buffer.popleft()

    def window(self, size: int) -> list[Entry]:
        self.peek(size - 1)
        return list(self._buffer)[:size]


class _Walk:
    """One stream's entries against their links and the signed checkpoints."""

    def __init__(
        self,
        stream: str,
        rows: Iterator[Entry],
        start_seq: int,
        prev: str,
        signed: dict[int, list[_Signed]],
        report: StreamReport,
    ) -> None:
        self.stream = stream
        self.rows = _Lookahead(rows)
        self.expected_seq = start_seq
        self.expected_prev = prev
        self.last_seq = start_seq - 1
        self.last: Entry | None = None
        self.last_matched = start_seq - 1
        self.signed = signed
        self.report = report

    def run(self) -> None:
        rows, stream = self.rows, self.stream
        while (row := rows.peek()) is not None:
            if row.seq != self.expected_seq or row.prev_hash != self.expected_prev:
                self._diagnose()
                continue
            following = rows.peek(1)
            if following is not None and following.seq == row.seq:
                self._duplicates()
                continue
            rows.pop()
            if why := defect(stream, row):
                self._problem(MODIFIED, row.seq, f"{describe(row)}: {why}")
            self._accept(row, row.seq)

    def _accept(self, row: Entry, position: int) -> None:
        report = self.report
        if not report.entries:
            report.first_seq = position
        report.entries += 1
        self.expected_prev = row.chain_hash
        self.expected_seq = position + 1
        self.last_seq = position
        self.last = row
        statements = self.signed.get(position)
        if statements is None:
            return
        for statement in statements:
            if statement.checkpoint.chain_hash == row.chain_hash:
                report.checkpoints_matched += 1
                report.covered_seq = position
                self.last_matched = position
            else:
                self._problem(
                    REWRITTEN,
                    self.last_matched + 1,
                    f"the {statement.label()} does not match the ledger: entries in this range were "
                    "rewritten (hashes recomputed to hide it)",
                    last_seq=position,
                )

    def _problem(self, kind: str, seq: int, detail: str, last_seq: int | None = None) -> None:
        self.report.add(Problem(kind, self.stream, seq, detail, last_seq))

    def _duplicates(self) -> None:
        """Several entries share one seq: keep the one the chain goes on from."""
        seq = self.expected_seq
        group = []
        while (row := self.rows.peek()) is not None and row.seq == seq:
            group.append(self.rows.pop())
        following = self.rows.peek()
        linking = [r for r in group if r.prev_hash == self.expected_prev]
        signed = {s.checkpoint.chain_hash for s in self.signed.get(seq, [])}
        genuine = next(
            (
                r
                for pool in (
                    [r for r in linking if r.chain_hash in signed],
                    [r for r in linking if following is not None and following.prev_hash == r.chain_hash],
                    [r for r in linking if not defect(self.stream, r)],
                    linking,
                )
                for r in pool
            ),
            group[0],
        )
        for row in group:
            if row is not genuine:
                self._problem(INSERTED, seq, f"an extra entry {describe(row)} is not part of the chain")
        if why := defect(self.stream, genuine):
            self._problem(MODIFIED, seq, f"{describe(genuine)}: {why}")
        self._accept(genuine, seq)

    def _diagnose(self) -> None:
        """The next entry does not continue the chain: find out why, report it, resume."""
        window = self.rows.window(LOOKAHEAD)
        first = window[0]
        if first.seq < self.expected_seq:
            self.rows.pop()
            self._problem(
                INSERTED,
                first.seq,
                f"an extra entry {describe(first)} repeats an already verified seq "
                "and is not part of the chain",
            )
            return
        by_prev: dict[str, list[int]] = {}
        for index, row in enumerate(window):
            by_prev.setdefault(row.prev_hash, []).append(index)
        path = self._follow(window, by_prev)
        if not path:
            self._unlinked(first)
            return
        successor = path[0]
        if successor == 0:
            self.rows.pop()
            self._problem(
                MODIFIED,
                first.seq,
                f"{describe(first)}: its seq was changed; "
                f"it is the entry that follows seq {self.expected_seq - 1}",
            )
            self._accept(first, first.seq)
            return
        if any(index < successor for index in path):
            self._reordered(window, path, successor)
            return
        for _ in range(successor):
            self.rows.pop()
        self._problem(
            INSERTED,
            first.seq,
            f"{_entries(successor)} not part of the chain, the first {describe(first)}",
            last_seq=window[successor - 1].seq,
        )
        self.expected_seq = window[successor].seq

    def _follow(self, window: list[Entry], by_prev: dict[str, list[int]]) -> list[int]:
        """Window positions in true chain order, starting from the expected link."""
        path: list[int] = []
        used: set[int] = set()
        link = self.expected_prev
        while True:
            options = [i for i in by_prev.get(link, ()) if i not in used]
            if not options:
                return path
            continuing = [i for i in options if window[i].chain_hash in by_prev]
            index = (continuing or options)[0]
            path.append(index)
            used.add(index)
            link = window[index].chain_hash

    def _unlinked(self, first: Entry) -> None:
        """Nothing ahead follows the last verified entry: it was cut off or rewritten."""
        self.rows.pop()
        why = defect(self.stream, first)
        last = self.last
        if last is not None and not why and first.prev_hash == last.prev_hash:
            self._problem(
                INSERTED,
                self.last_seq,
                f"an extra entry {describe(last)} is not part of the chain: the entry after it "
                "follows the same predecessor, and the chain goes on from that one",
            )
        elif first.seq > self.expected_seq:
            self._problem(
                DELETED,
                self.expected_seq,
                f"{_entries(first.seq - self.expected_seq)} missing before {describe(first)}",
                last_seq=first.seq - 1,
            )
            if why:
                self._problem(MODIFIED, first.seq, f"{describe(first)}: {why}")
        elif why:
            self._problem(MODIFIED, first.seq, f"{describe(first)}: {why}")
        else:
            self._problem(
                UNLINKED,
                first.seq,
                f"{describe(first)} does not follow seq {first.seq - 1}: that entry was rewritten, "
                "or entries were deleted here and the later ones renumbered",
            )
        self._accept(first, first.seq)

    def _reordered(self, window: list[Entry], path: list[int], successor: int) -> None:
        """Entries placed before the true successor belong later in the chain."""
        first_seq = window[0].seq
        block = 0
        highest = -1
        for taken, index in enumerate(path, start=1):
            highest = max(highest, index)
            if highest == taken - 1:
                block = taken
                break
        if not block:  # the displaced entries reach past the window: resume at the successor
            for _ in range(successor):
                self.rows.pop()
            self._problem(
                REORDERED,
                first_seq,
                f"entries are out of order: the entry that follows seq {self.expected_seq - 1} "
                f"sits at seq {window[successor].seq}",
            )
            self.expected_seq = window[successor].seq
            return
        self._problem(
            REORDERED,
            first_seq,
            f"{_entries(block)} out of order: the entry that follows seq {self.expected_seq - 1} "
            f"sits at seq {window[successor].seq}",
            last_seq=window[block - 1].seq,
        )
        for _ in range(block):
            self.rows.pop()
        position = self.expected_seq
        for index in path[:block]:
            row = window[index]
            if why := defect(self.stream, row):
                self._problem(MODIFIED, row.seq, f"{describe(row)}: {why}")
            self._accept(row, position)
            position += 1
        self.expected_seq = window[block - 1].seq + 1
