"""The recorder in a process of its own: the API process answers, this one stores.

Why a process and not a thread beside the handlers: storing a batch (rows into
columns, the ledger's hashes, the embedded engine) holds the interpreter lock for
milliseconds at a time, and every request arriving meanwhile waits behind it; that
wait, not the decision, set the API's p99. The journal already decouples the two
sides, so the recorder needs nothing from the API process but the settings: it
opens the store (an embedded store directory belongs to one process: this one),
the alert manager and the gate, and runs the ``JournalRecorder`` loop over the
journal's files.

``RecorderProcess`` is the API process's side of it:

* ``start`` spawns the recorder and waits until its store is open, so a store that
  cannot be opened (locked, unreachable, a bad signing key) fails ``vigil serve`` at
  start with the recorder's own error, as when both lived in one process;
* ``check`` (called about once a second) restarts a recorder that died. Its only
  state is the journal's position: a batch stored and not yet committed is stored
  again on restart and counted once by the ``*_unique`` views. Restarts back off
  (1, 2, 4... seconds); after ``max_restarts`` deaths with less than
  ``healthy_seconds`` of running between them it gives up and sets ``failure``,
  which stops the server with a non-zero exit;
* ``stop`` lets the recorder drain the journal for the grace period, then waits a
  bounded time for it to close the store, and kills it past that.

The recorder ignores SIGINT (Ctrl-C reaches the whole process group; the API
process decides when recording ends) and takes SIGTERM as "drain and exit". It
runs at a lower CPU priority (``VIGIL_API_RECORDER_NICE``, default 10): when both
want a core, answering comes first and storing catches up in the gaps, its backlog
safe in the journal.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import pickle
import signal
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.context import SpawnProcess
from pathlib import Path
from typing import Any

from api.journal import JournalReader
from api.recorder import JournalRecorder
from streams.checkpoint import BatchCheckpoint
from vigil.log_format import configure_logging
from vigil.runtime import alert_gate, build_notifiers, open_store, settle_memory
from vigil.settings import Settings

log = logging.getLogger(__name__)

_SPAWN = multiprocessing.get_context("spawn")
"""Never fork: the API process runs threads and an event loop a forked child would inherit half of."""
CLOSE_SECONDS = 30.0
"""After the grace period: how long the recorder may take to close the store before it is killed."""
_POLL_SECONDS = 0.2
Counter = Any
"""A shared 64-bit integer (``RawValue("q")``): decisions stored, over every recorder the API ran."""


class RecorderStartError(RuntimeError):
    """The recorder did not open its store: it ended or timed out first, or its error cannot be pickled."""


def journal_dir(settings: Settings) -> Path:
    """Where the API journals its answers and the recorder reads them."""
    return settings.api.journal_dir or settings.data_dir / "api-journal"


def record(settings: Settings, channel: Connection, stored: Counter) -> None:
    """The recorder process: open the store, store the journal until told to stop, drain, close.

    ``channel`` says once whether the store opened (``None``, or the error); then any
    word from the API process, or its end (the API process exited, even killed),
    means stop. Exits 0 once it has drained, 1 when recording failed for good.
    """
    terminated = threading.Event()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: terminated.set())
    configure_logging(settings.log_level, settings.log_format)
    os.nice(settings.api.recorder_nice)
    try:
        opened = open_store(settings)
        try:
            notifiers = build_notifiers(settings)
        except BaseException:
            opened.close()
            raise
    except BaseException as error:
        channel.send(_portable(error))
        sys.exit(1)
    gate = alert_gate(settings)
    try:
        recorder = JournalRecorder(
            JournalReader(journal_dir(settings)),
            lambda stopping: BatchCheckpoint(opened.store, notifiers, stopping=stopping),
            gate,
        ).start()
        settle_memory()
        channel.send(None)
        before = stored.value
        while not (terminated.is_set() or channel.poll(_POLL_SECONDS) or recorder.failure is not None):
            stored.value = before + recorder.stored
        recorder.stop(settings.api.drain_grace_seconds)
        stored.value = before + recorder.stored
    finally:
        try:
            notifiers.close()
        finally:
            opened.close()
    sys.exit(1 if recorder.failure is not None else 0)


def _portable(error: BaseException) -> BaseException:
    """The error itself when it crosses a process boundary intact, else its type and message."""
    try:
        pickle.loads(pickle.dumps(error))
    except Exception:
        return RecorderStartError(f"{type(error).__name__}: {error}")
    return error


class RecorderProcess:
    def __init__(
        self,
        settings: Settings,
        target: Callable[[Settings, Connection, Counter], None] = record,
        max_restarts: int = 5,
        healthy_seconds: float = 60.0,
        start_timeout: float = 120.0,
        close_seconds: float = CLOSE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.target = target
        self.max_restarts = max_restarts
        self.healthy_seconds = healthy_seconds
        self.start_timeout = start_timeout
        self.close_seconds = close_seconds
        self.clock = clock
        self._stopping = False
        self._stored: Counter = _SPAWN.RawValue("q", 0)
        """Written by one recorder at a time, read here: no lock a killed recorder could leave held."""
        self._process: SpawnProcess | None = None
        self._channel: Connection | None = None
        self._started_at = 0.0
        self._deaths = 0
        self._restart_at: float | None = None
        self.restarts = 0
        self.failure: str | None = None
        self._lock = threading.Lock()
        """``check`` (a watcher thread) and ``stop`` (the main thread) never overlap."""

    def start(self) -> RecorderProcess:
        """Spawn the recorder; return once its store is open, else raise its error."""
        ours, theirs = _SPAWN.Pipe()
        process = _SPAWN.Process(
            target=self.target, args=(self.settings, theirs, self._stored), name="vigil-api-recorder"
        )
        process.start()
        theirs.close()  # the child holds the only other end: its exit reads as end of file
        try:
            if not ours.poll(self.start_timeout):
                process.kill()
                process.join()
                raise RecorderStartError(f"the recorder did not open the store in {self.start_timeout:.0f}s")
            error = ours.recv()
        except EOFError:
            ours.close()
            process.join()
            raise RecorderStartError(
                f"the recorder exited with status {process.exitcode} before the store was open"
            ) from None
        except BaseException:
            ours.close()
            raise
        if error is not None:
            ours.close()
            process.join()
            raise error
        self._process, self._channel, self._started_at = process, ours, self.clock()
        return self

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def stored(self) -> int:
        """Decisions stored since the API started, over every recorder it ran."""
        return int(self._stored.value)

    @property
    def state(self) -> str:
        if self.failure is not None:
            return "failed"
        return "running" if self._process is not None and self._process.is_alive() else "restarting"

    def check(self) -> None:
        """Restart a recorder that died (after its back-off); give up after too many deaths."""
        with self._lock:
            self._check()

    def _check(self) -> None:
        if self.failure is not None or self._stopping:
            return
        if self._restart_at is None:
            if self._process is None or self._process.is_alive():
                return
            if self._channel is not None:
                self._channel.close()
                self._channel = None
            self._died(self._process.exitcode)
        if self._restart_at is not None and self.clock() >= self._restart_at:
            self._restart_at = None
            self.restarts += 1
            try:
                self.start()
                log.warning("recorder restarted (pid %s); it resumes from the journal's position", self.pid)
            except BaseException as error:  # counted as another death
                log.error("recorder restart failed: %s", error)
                self._process = None
                self._died(None)

    def _died(self, status: int | None) -> None:
        now = self.clock()
        ran = now - self._started_at
        self._deaths = 1 if ran >= self.healthy_seconds and status is not None else self._deaths + 1
        if self._deaths > self.max_restarts:
            self.failure = f"the recorder died {self._deaths} times in a row (last status {status})"
            log.error("%s: giving up; journaled decisions wait for the next start", self.failure)
            return
        backoff = 2.0 ** (self._deaths - 1)
        log.error("recorder exited with status %s; restarting in %.0fs", status, backoff)
        self._restart_at = now + backoff

    def stop(self, grace: float) -> None:
        """Let the recorder drain for ``grace`` seconds, then close the store; kill it past that."""
        with self._lock:
            self._stopping = True
            process, channel = self._process, self._channel
        if process is None or channel is None:
            self.failure = self.failure or "the recorder was not running when the server stopped"
            return
        try:
            channel.send(None)
        except OSError:  # it is gone already
            pass
        finally:
            channel.close()
        process.join(grace + self.close_seconds)
        if process.is_alive():
            self.failure = f"the recorder was still running {self.close_seconds:.0f}s after the grace period"
            log.error("%s: killed", self.failure)
            process.kill()
            process.join()
        elif process.exitcode != 0:
            self.failure = self.failure or f"the recorder exited with status {process.exitcode}"
