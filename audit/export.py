"""Copies of signed checkpoints outside ClickHouse: a directory of JSON files and an outbox.

Someone who can rewrite ClickHouse can delete the ledger's tail together with the
checkpoints that cover it; the copies kept here are what give that away. A file is
named by sequence number and chain hash and never overwritten, so even two
conflicting checkpoints for one sequence number both survive. The outbox holds the
latest checkpoint per stream for the Kafka driver to publish to the compacted
``ai.audit`` topic (which itself keeps only the latest per stream).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from urllib.parse import quote, unquote

from audit.checkpoint import Checkpoint, CheckpointFormatError
from audit.verify import ExternalCheckpoint

log = logging.getLogger(__name__)


class DirectoryExport:
    """``<dir>/<stream, %-quoted>/<seq, 20 digits>-<chain hash prefix>.json``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path_of(self, checkpoint: Checkpoint) -> Path:
        name = f"{checkpoint.seq:020d}-{checkpoint.chain_hash[:16]}.json"
        return self.directory / quote(checkpoint.stream, safe="") / name

    def write(self, checkpoint: Checkpoint) -> None:
        path = self.path_of(checkpoint)
        if path.exists():
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with temporary.open("wb") as handle:
            handle.write(checkpoint.to_json())
            handle.flush()
            os.fsync(handle.fileno())
        temporary.replace(path)

    def read(self, stream: str | None = None) -> Iterator[ExternalCheckpoint]:
        """Every exported checkpoint (of ``stream``); unreadable files are reported, not skipped."""
        if not self.directory.is_dir():
            return
        folders = [self.directory / quote(stream, safe="")] if stream else sorted(self.directory.iterdir())
        for folder in folders:
            if not folder.is_dir():
                continue
            for path in sorted(folder.glob("*.json")):
                try:
                    checkpoint = Checkpoint.from_json(path.read_bytes())
                except (OSError, CheckpointFormatError) as error:
                    yield ExternalCheckpoint(str(path), unquote(folder.name), None, str(error))
                else:
                    yield ExternalCheckpoint(str(path), checkpoint.stream, checkpoint)


class CheckpointExports:
    """Fan a stored checkpoint out to the directory and the Kafka outbox.

    A failing directory (disk full, unmounted) must not stop ingestion: the
    checkpoint is already in ClickHouse. It is logged and retried with the next one.
    """

    def __init__(self, directory: DirectoryExport) -> None:
        self.directory = directory
        self._unwritten: list[Checkpoint] = []
        self._outbox: dict[str, Checkpoint] = {}
        self._lock = threading.Lock()

    def publish(self, checkpoints: Iterable[Checkpoint]) -> None:
        checkpoints = list(checkpoints)
        with self._lock:
            self._keep_latest(checkpoints)
            pending, self._unwritten = [*self._unwritten, *checkpoints], []
        for checkpoint in pending:
            try:
                self.directory.write(checkpoint)
            except OSError as error:
                log.error(
                    "exporting checkpoint %s seq %d to %s failed (retried with the next one): %s",
                    checkpoint.stream,
                    checkpoint.seq,
                    self.directory.directory,
                    error,
                )
                with self._lock:
                    self._unwritten.append(checkpoint)

    @property
    def unwritten(self) -> int:
        return len(self._unwritten)

    def take_outbox(self) -> list[Checkpoint]:
        with self._lock:
            taken, self._outbox = list(self._outbox.values()), {}
        return taken

    def return_to_outbox(self, checkpoints: Iterable[Checkpoint]) -> None:
        """Publishing failed: keep them for the next attempt unless newer ones arrived."""
        with self._lock:
            self._keep_latest(checkpoints)

    def _keep_latest(self, checkpoints: Iterable[Checkpoint]) -> None:
        for checkpoint in checkpoints:
            current = self._outbox.get(checkpoint.stream)
            if current is None or current.seq <= checkpoint.seq:
                self._outbox[checkpoint.stream] = checkpoint
