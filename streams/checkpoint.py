"""Store, publish, then commit: the order every driver keeps, written once.

A driver hands each processed batch to ``BatchCheckpoint.add`` together with the
offsets that become safe to commit once the batch is. The batch is then, in order:

1. stored (``store.write``), retried with back-off while the process is not stopping:
   an unstored batch must hold its partitions back, never be skipped. Its findings and
   alerts are stored first and its alerts handed to the producer at once, so they
   travel while the rest of the batch is stored;
2. published (dead letters, the alerts if not yet sent, audit checkpoints), returning
   only once the broker has confirmed every message;
3. notified (alerts to the in-process notifier of an embedded run; a Kafka worker
   has none: its alerts were published to ``ai.alerts`` in step 2), then
4. committed.

Steps 1 and 2 run on a writer thread of their own, so the driver processes the next
batch meanwhile; at most one batch is in the writer at a time, and ``add`` first
finishes the previous one (steps 3 and 4 on the caller's thread), so commits happen
strictly in order and from the thread that owns the consumer. If any step fails the
error is raised from ``add`` or ``flush`` and the batch is never committed: the
process ends and the next start resumes from the last commit (at least once).

``vigil run`` uses the same object without a commit; the Kafka worker commits offsets.
Like a quix-streams sink whose flush is bound to the checkpoint, nothing is committed
that the sinks have not confirmed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from vigil.pipeline import BatchResult

log = logging.getLogger(__name__)

Offsets = dict[tuple[str, int], int]
"""``(topic, partition)`` to the next offset to read, as Kafka commits it."""

MAX_BACKOFF_SECONDS = 30.0


class Store(Protocol):
    def write(self, tables: dict[str, Any], alerts_stored: Callable[[], None] | None = None) -> None:
        """Store every table; if there are alerts and ``alerts_stored`` is given, call it once
        the findings and alerts are stored, before the other tables."""


class Outputs(Protocol):
    def send_alerts(self, result: BatchResult) -> None:
        """Hand the batch's alerts to the producer without waiting for the broker."""

    def publish(self, result: BatchResult, alerts_sent: bool = False) -> None:
        """Send the batch's messages; return once all are confirmed, raise otherwise."""


class Notify(Protocol):
    def notify(self, alerts: Sequence[Any]) -> None:
        """Apply one batch's alert rows; return once they are safely kept."""


class StoreAbortedError(RuntimeError):
    """The process is stopping while a batch is still unstored: it stays uncommitted."""


def store_until_done(
    store: Store,
    tables: dict[str, Any],
    stopping: threading.Event,
    max_backoff: float = MAX_BACKOFF_SECONDS,
    alerts_stored: Callable[[], None] | None = None,
) -> None:
    """Retry until stored: an unstored batch must block its partitions, not be skipped."""
    delay = 0.5
    while True:
        try:
            store.write(tables, alerts_stored)
            return
        except Exception as error:
            log.error("storing a batch failed, retrying in %.1fs: %s", delay, error)
            if stopping.wait(delay):
                raise StoreAbortedError("stopping; the batch is left uncommitted") from error
            delay = min(delay * 2, max_backoff)


class CheckpointFailedError(RuntimeError):
    """A batch after one that failed: committing it would skip the failed one."""


@dataclass
class _InFlight:
    result: BatchResult
    offsets: Offsets
    written: Future[None]


class BatchCheckpoint:
    def __init__(
        self,
        store: Store,
        notifiers: Notify | None = None,
        *,
        outputs: Outputs | None = None,
        commit: Callable[[Offsets], None] | None = None,
        stopping: threading.Event | None = None,
        max_backoff: float = MAX_BACKOFF_SECONDS,
    ) -> None:
        self.store = store
        self.notifiers = notifiers
        self.outputs = outputs
        self.commit = commit
        self.stopping = stopping if stopping is not None else threading.Event()
        self.max_backoff = max_backoff
        self.committed = 0
        """Batches that went through all four steps."""
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vigil-store")
        self._in_flight: _InFlight | None = None
        self._failed: BaseException | None = None

    def add(self, result: BatchResult, offsets: Offsets | None = None) -> None:
        """Finish the previous batch, then start storing this one in the background."""
        self.flush()
        self._in_flight = _InFlight(result, dict(offsets or {}), self._writer.submit(self._write, result))

    def flush(self, wait: bool = True) -> None:
        """Wait until every added batch is stored, published, notified and committed.

        With ``wait=False`` only a batch already written is finished: a driver calls it
        between fetches, so the last batch before a quiet spell is committed at once.
        """
        if self._failed is not None:
            raise CheckpointFailedError(
                "an earlier batch failed; nothing after it is committed"
            ) from self._failed
        batch = self._in_flight
        if batch is None or not (wait or batch.written.done()):
            return
        self._in_flight = None
        try:
            batch.written.result()
            if self.notifiers is not None and batch.result.alerts:
                self.notifiers.notify(batch.result.alerts)
            if self.commit is not None and batch.offsets:
                self.commit(batch.offsets)
        except BaseException as error:
            self._failed = error
            raise
        self.committed += 1

    @property
    def pending(self) -> bool:
        return self._in_flight is not None

    @property
    def written(self) -> bool:
        """A batch is stored and published, waiting for ``flush`` to commit it."""
        return self._in_flight is not None and self._in_flight.written.done()

    def close(self) -> None:
        """Stop the writer. A batch not flushed by now stays uncommitted (retries give up)."""
        self.stopping.set()
        self._writer.shutdown(wait=True)

    def _write(self, result: BatchResult) -> None:
        started = time.perf_counter()
        outputs, sent = self.outputs, False
        early: Callable[[], None] | None = None  # without outputs nothing leaves early
        if outputs is not None:

            def send_alerts() -> None:  # a retried write stores its alerts again, but sends them once
                nonlocal sent
                if not sent:
                    outputs.send_alerts(result)
                    sent = True

            early = send_alerts
        store_until_done(self.store, result.tables(), self.stopping, self.max_backoff, early)
        stored = time.perf_counter()
        if outputs is not None:
            outputs.publish(result, alerts_sent=sent)
        log.debug("batch stored in %.3fs, published in %.3fs", stored - started, time.perf_counter() - stored)
