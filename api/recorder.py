"""Move journaled decisions into the store, ledger and alerts, at least once.

One thread of the recorder process (``api.recorder_process``) reads the journal from
its committed position, rebuilds the rows, admits the deny findings to the alert
gate and hands the batch to a ``BatchCheckpoint`` (the same store-then-notify order
every driver keeps). The journal's position moves
only once the checkpoint has stored the batch and notified its alerts. While the
store is unavailable the checkpoint retries with back-off and the API keeps
answering into the journal; on shutdown the thread drains what it can within the
grace period and leaves the rest for the next start.

After a batch smaller than ``batch_size`` the thread waits ``idle_wait`` before
reading again: each store write has a fixed cost (several inserts, the ledger), so
half a second of records in one batch costs the store a fraction of the CPU that
twenty small batches would, CPU the API process answers with.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import orjson

from alerting.gate import AlertGate
from api.journal import JournalReader
from api.records import DecisionRecord
from streams.checkpoint import BatchCheckpoint, StoreAbortedError
from vigil.pipeline import BatchResult

log = logging.getLogger(__name__)


class JournalRecorder:
    def __init__(
        self,
        journal: JournalReader,
        checkpoint: Callable[[threading.Event], BatchCheckpoint],
        gate: AlertGate,
        batch_size: int = 2000,
        idle_wait: float = 0.5,
    ) -> None:
        self.journal = journal
        self.gate = gate
        self.batch_size = batch_size
        self.idle_wait = idle_wait
        self._closing = threading.Event()
        self._abandon = threading.Event()
        """Set when the grace period is over: the checkpoint stops retrying the store."""
        self.checkpoint = checkpoint(self._abandon)
        self.position = journal.position()
        self.stored = 0
        self.failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="vigil-api-recorder", daemon=True)

    def start(self) -> JournalRecorder:
        self._thread.start()
        return self

    def drain_once(self) -> int:
        """Store the next batch of journaled records; return how many (0: caught up)."""
        batch = self.journal.read(self.batch_size, self.position)
        if batch.end == self.position:
            return 0
        result = BatchResult()
        for line in batch.lines:
            try:
                record = DecisionRecord.from_json(orjson.loads(line))
            except (ValueError, TypeError, KeyError) as error:
                log.error("journal record at %s is unreadable, skipped: %s", self.position, error)
                continue
            result.events.append(record.event)
            result.decisions.append(record.decision)
            result.findings.extend(record.findings)
        result.alerts = self.gate.admit(result.findings)
        self.checkpoint.add(result)
        self.checkpoint.flush()
        self.journal.commit(batch.end)
        self.position = batch.end
        self.stored += len(result.decisions)
        return len(batch.lines)

    @property
    def backlog_bytes(self) -> int:
        return self.journal.backlog_bytes(self.position)

    def stop(self, grace: float = 10.0) -> None:
        """Drain for up to ``grace`` seconds, then give up on the rest (kept for the next start)."""
        self._closing.set()
        self._thread.join(grace)
        if self._thread.is_alive():
            log.warning(
                "journal not drained in %.0fs: %d journaled bytes wait for the next start",
                grace,
                self.backlog_bytes,
            )
            self._abandon.set()
            self._thread.join()
        self.checkpoint.close()

    def _run(self) -> None:
        try:
            while not self._closing.is_set():
                if self.drain_once() < self.batch_size:
                    self._closing.wait(self.idle_wait)
            while not self._abandon.is_set() and self.drain_once():
                pass
        except StoreAbortedError:
            return
        except BaseException as error:
            self.failure = error
            log.exception("recording decisions failed; journaled records wait for the next start")
