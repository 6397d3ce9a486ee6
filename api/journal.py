"""A durable local queue of decision records: the API answers, the journal remembers.

Why a journal rather than publishing each record to a topic the worker stores: the
answer must never wait on a broker or the store, and a record must outlive an outage
of either. Appending a line to a local file costs microseconds and cannot be refused
by anything but a full disk (then the API refuses to decide: no record, no decision).
A drain thread (``api.recorder``) moves records into the store through the same
``BatchCheckpoint`` as every driver (tables, audit ledger, then alerts), retrying
while the store is unavailable, and only then advances the journal's position. A
crash between the two stores a batch twice; the ``*_unique`` views count it once.

Layout: segment files ``<first offset>.jsonl`` of one JSON record per line, and a
``position`` file (``<segment> <byte>``) replaced atomically after each stored batch.
Each start opens a new segment, so a line torn by a crash is only ever the last of a
closed segment, where the reader skips it. Segments the position has passed are
deleted. Appends are written with one ``write`` call: they survive a crash of the
process at once, and a crash of the machine once the OS has written them back, or
at once with ``fsync=True`` (a disk flush per request, slower).

One process writes (``Journal``, the API) and another may read (``JournalReader``,
the recorder): the reader knows no writer's state, only the files. The newest
segment is the one being written, so an unfinished line at its end is an append
still under way, waited for; in an older segment it is a tear, skipped.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

SEGMENT_SUFFIX = ".jsonl"
POSITION_FILE = "position"


@dataclass(frozen=True, slots=True)
class Position:
    segment: str
    byte: int


@dataclass(frozen=True, slots=True)
class ReadBatch:
    lines: list[bytes]
    end: Position


class JournalReader:
    """The reading side: what is journaled and not yet stored, and the stored position."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)

    def segments(self) -> list[str]:
        return sorted(p.name for p in self.directory.glob(f"*{SEGMENT_SUFFIX}"))

    def position(self) -> Position:
        path = self.directory / POSITION_FILE
        if path.exists():
            segment, byte = path.read_text(encoding="ascii").split()
            return Position(segment, int(byte))
        segments = self.segments()
        return Position(segments[0] if segments else "", 0)

    def read(self, max_lines: int, start: Position) -> ReadBatch:
        """Up to ``max_lines`` whole records from ``start`` on, across segments."""
        lines: list[bytes] = []
        position = start
        segments = [s for s in self.segments() if s >= start.segment]
        for segment in segments:
            newest = segment == segments[-1]
            if segment != position.segment:
                position = Position(segment, 0)
            path = self.directory / segment
            with path.open("rb") as file:
                file.seek(position.byte)
                while len(lines) < max_lines:
                    line = file.readline()
                    if not line.endswith(b"\n"):
                        if line and not newest:
                            log.error(
                                "journal %s ends in a torn record (%d bytes): skipped", segment, len(line)
                            )
                            position = Position(segment, position.byte + len(line))
                        break
                    lines.append(line[:-1])
                    position = Position(segment, position.byte + len(line))
            if len(lines) >= max_lines or newest:
                break
        return ReadBatch(lines, position)

    def commit(self, position: Position) -> None:
        """Everything before ``position`` is stored: remember it and delete passed segments."""
        path = self.directory / POSITION_FILE
        temporary = path.with_suffix(".tmp")
        temporary.write_text(f"{position.segment} {position.byte}\n", encoding="ascii")
        os.replace(temporary, path)
        for segment in self.segments()[:-1]:  # never the newest: it is being written
            if segment < position.segment:
                (self.directory / segment).unlink(missing_ok=True)

    def backlog_bytes(self, start: Position) -> int:
        """Bytes appended and not yet stored: how far the store is behind."""
        total = 0
        for segment in self.segments():
            if segment >= start.segment:
                try:
                    size = (self.directory / segment).stat().st_size
                except FileNotFoundError:  # stored and deleted by the reader meanwhile
                    continue
                total += size - (start.byte if segment == start.segment else 0)
        return total


class Journal(JournalReader):
    """The writing side, for one process at a time; it can read too (tests, a one-process setup)."""

    def __init__(self, directory: Path, segment_bytes: int = 64 * 2**20, fsync: bool = False) -> None:
        super().__init__(directory)
        self.segment_bytes = segment_bytes
        self.fsync = fsync
        self._lock = threading.Lock()
        segments = self.segments()
        self._next_offset = _end_offset(directory, segments[-1]) if segments else 0
        self._fd = -1
        self._size = 0
        self.active = ""
        self._open_segment()

    def append(self, lines: list[bytes]) -> int:
        """Append records; return the offset of the first. Raises ``OSError`` if not written."""
        data = b"".join(line + b"\n" for line in lines)
        with self._lock:
            first = self._next_offset
            view = memoryview(data)
            try:
                while view:
                    written = os.write(self._fd, view)
                    view = view[written:]
                if self.fsync:
                    os.fsync(self._fd)
            except OSError:
                # A full disk may leave part of the lines: cut them off, or the next append
                # would continue a torn line and the reader would have to drop both.
                os.ftruncate(self._fd, self._size)
                raise
            self._next_offset += len(lines)
            self._size += len(data)
            if self._size >= self.segment_bytes:
                os.close(self._fd)
                self._open_segment()
        return first

    @property
    def next_offset(self) -> int:
        """The offset the next appended record gets."""
        return self._next_offset

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    def _open_segment(self) -> None:
        name = f"{self._next_offset:020d}{SEGMENT_SUFFIX}"
        path = self.directory / name
        if path.exists():  # the last segment holds no whole record: carry on in it, untorn
            whole = path.read_bytes().rfind(b"\n") + 1
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND)
            os.ftruncate(self._fd, whole)
        else:
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o600)
        self._size = os.fstat(self._fd).st_size
        self.active = name


def _end_offset(directory: Path, segment: str) -> int:
    """The offset after the last whole record of a segment."""
    with (directory / segment).open("rb") as file:
        return int(segment.removesuffix(SEGMENT_SUFFIX)) + sum(1 for line in file if line.endswith(b"\n"))
