"""Owed notifications and the workers that deliver them, one queue per receiver.

Each receiver integration (a Slack channel, a webhook, ...) has an :class:`Outbox`:
an ordered queue journaled to disk, so what is owed survives a restart, and a
:class:`DeliveryWorker` with its own thread, so a slow or dead receiver delays
nobody else and never the stream. Delivery is in order per receiver: the head is
retried with exponential back-off (capped) until the receiver answers again, then
everything behind it follows in order. Only errors a retry cannot fix (an unknown
channel, a revoked token) fail a notification, and that is recorded, logged and
counted. While a notification waits, a newer ``update`` of the same group folds
into it: after an outage the receiver gets the latest state, not every step.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

import orjson

from alerting.dispatcher import Ack
from alerting.notifications import Notification
from alerting.records import NotificationRow

log = logging.getLogger(__name__)


class DeliveryError(Exception):
    """A delivery failed; ``retryable`` says whether trying again can help."""

    def __init__(self, message: str, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class Receiver(Protocol):
    """One integration of a receiver. ``deliver`` raises :class:`DeliveryError`."""

    name: str

    def deliver(self, notification: Notification) -> None: ...

    def poll(self) -> list[Ack]:
        """Acknowledgements made on the receiver's side (Slack thread replies)."""
        ...

    def close(self) -> None: ...


class Metrics:
    """Counters shared by the manager and its workers; ``snapshot`` for logs and tests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def inc(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self._counts[name] += amount

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


@dataclass
class Pending:
    notification: Notification
    attempts: int = 0
    next_attempt: float = 0.0
    last_error: str = ""
    in_flight: bool = False


class Outbox:
    """Notifications owed to one receiver, in order, mirrored in an append-only journal."""

    def __init__(self, name: str, journal: Path | None = None, max_pending: int = 10_000) -> None:
        self.name = name
        self.journal = journal
        self.max_pending = max_pending
        self._lock = threading.Lock()
        self._items: list[Pending] = []
        if journal is not None:
            journal.parent.mkdir(parents=True, exist_ok=True)
            self._items = [Pending(n) for n in _replay(journal)]
            self._rewrite()
            if self._items:
                log.warning("%s: %d notification(s) owed from before, delivering them", name, len(self))

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def pending(self) -> list[Pending]:
        with self._lock:
            return list(self._items)

    def put(self, notification: Notification) -> Notification | None:
        """Queue, or fold into a waiting message of the group; None if the outbox is full.

        Returns what is now owed: the notification, or the waiting one it folded into.
        """
        with self._lock:
            if notification.kind == "update":
                waiting = next(
                    (p for p in reversed(self._items) if p.notification.group_id == notification.group_id),
                    None,
                )
                if (
                    waiting is not None
                    and not waiting.in_flight
                    and waiting.notification.kind
                    in (
                        "firing",
                        "update",
                    )
                ):
                    folded = _with_kind(notification, waiting.notification)
                    waiting.notification = folded
                    self._append({"op": "replace", "n": _encoded(folded)})
                    return folded
            if len(self._items) >= self.max_pending:
                return None
            self._items.append(Pending(notification))
            self._append({"op": "put", "n": _encoded(notification)})
            return notification

    def head(self) -> Pending | None:
        with self._lock:
            if not self._items:
                return None
            head = self._items[0]
            head.in_flight = True
            return head

    def release(self, item: Pending) -> None:
        with self._lock:
            item.in_flight = False

    def remove(self, item: Pending) -> None:
        with self._lock:
            self._items.remove(item)
            if self._items:
                self._append({"op": "done", "id": item.notification.notification_id})
            else:
                self._rewrite()

    def _append(self, record: dict[str, object]) -> None:
        if self.journal is None:
            return
        with self.journal.open("ab") as handle:
            handle.write(orjson.dumps(record) + b"\n")

    def _rewrite(self) -> None:
        if self.journal is None:
            return
        temporary = self.journal.with_suffix(".tmp")
        with temporary.open("wb") as handle:
            for item in self._items:
                handle.write(orjson.dumps({"op": "put", "n": _encoded(item.notification)}) + b"\n")
        temporary.replace(self.journal)


def _encoded(notification: Notification) -> str:
    return notification.to_json().decode()


def _with_kind(newer: Notification, waiting: Notification) -> Notification:
    """The newer content under the waiting notification's identity and kind."""
    return Notification(
        notification_id=waiting.notification_id,
        group_id=newer.group_id,
        receiver=newer.receiver,
        kind=waiting.kind,
        group_labels=newer.group_labels,
        alerts=newer.alerts,
        created_at=waiting.created_at,
        window_seconds=waiting.window_seconds + newer.window_seconds,
        resolve_timeout=newer.resolve_timeout,
        seq=waiting.seq,
        extra=newer.extra,
    )


def _replay(journal: Path) -> list[Notification]:
    """The notifications still owed according to the journal (a torn last line is skipped)."""
    if not journal.exists():
        return []
    owed: dict[str, Notification] = {}
    for number, line in enumerate(journal.read_bytes().splitlines(), start=1):
        try:
            record = orjson.loads(line)
            if record["op"] == "done":
                owed.pop(record["id"], None)
            else:
                notification = Notification.from_json(record["n"])
                owed[notification.notification_id] = notification
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as error:
            log.error("%s:%d: unreadable journal record skipped (%s)", journal, number, error)
    return list(owed.values())


StatusSink = Callable[[NotificationRow], None]


class DeliveryWorker:
    """Delivers one outbox in order; ``step`` is one pass, the thread repeats it."""

    def __init__(
        self,
        receiver: Receiver,
        outbox: Outbox,
        clock: Callable[[], float],
        wall_clock: Callable[[], datetime],
        status: StatusSink,
        metrics: Metrics,
        on_acks: Callable[[list[Ack]], None],
        backoff_initial: float = 1.0,
        backoff_max: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.receiver = receiver
        self.outbox = outbox
        self.clock = clock
        self.wall_clock = wall_clock
        self.status = status
        self.metrics = metrics
        self.on_acks = on_acks
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.sleep = sleep
        self._wake = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None

    def submit(self, notification: Notification) -> None:
        owed = self.outbox.put(notification)
        if owed is not None:
            self._report(owed, "pending", 0, "")
        else:
            self.metrics.inc("notifications_overflow")
            self._report(notification, "overflow", 0, f"outbox full ({self.outbox.max_pending})")
            log.error(
                "%s: outbox full, notification %s not queued (recorded in notifications)",
                self.receiver.name,
                notification.notification_id,
            )
        with self._wake:
            self._wake.notify()

    def step(self) -> float | None:
        """Deliver what is due, in order; return when the head is next due (None: empty)."""
        self._poll()
        while (item := self.outbox.head()) is not None:
            now = self.clock()
            if item.next_attempt > now:
                self.outbox.release(item)
                return item.next_attempt
            if not self._attempt(item):
                self.outbox.release(item)
                return item.next_attempt
        return None

    def _attempt(self, item: Pending) -> bool:
        notification = item.notification
        item.attempts += 1
        try:
            self.receiver.deliver(notification)
        except DeliveryError as error:
            item.last_error = str(error)
            if error.retryable:
                delay = min(self.backoff_max, self.backoff_initial * 2 ** min(item.attempts - 1, 20))
                item.next_attempt = self.clock() + delay
                self.metrics.inc("delivery_retries")
                self._report(notification, "pending", item.attempts, item.last_error)
                log.warning(
                    "%s: delivery of %s failed (attempt %d), retrying in %.0fs: %s",
                    self.receiver.name,
                    notification.notification_id,
                    item.attempts,
                    delay,
                    error,
                )
                return False
            self.outbox.remove(item)
            self.metrics.inc("notifications_failed")
            self._report(notification, "failed", item.attempts, item.last_error)
            log.error(
                "%s: notification %s cannot be delivered: %s",
                self.receiver.name,
                notification.notification_id,
                error,
            )
            return True
        self.outbox.remove(item)
        self.metrics.inc("notifications_delivered")
        self._report(notification, "delivered", item.attempts, "")
        return True

    def _poll(self) -> None:
        try:
            acks = self.receiver.poll()
        except Exception as error:  # reading acks is best effort; delivery must go on
            log.warning("%s: reading acknowledgements failed: %s", self.receiver.name, error)
            return
        if acks:
            self.on_acks(acks)

    def _report(self, notification: Notification, status: str, attempts: int, error: str) -> None:
        self.status(
            NotificationRow(
                notification_id=notification.notification_id,
                receiver=self.receiver.name,
                group_id=notification.group_id,
                kind=notification.kind,
                seq=notification.seq,
                status=status,
                attempts=attempts,
                last_error=error[:1000],
                headline=notification.headline(),
                alert_ids=[a.alert_id for a in notification.alerts],
                created_at=notification.created_at,
                updated_at=self.wall_clock(),
            )
        )

    # --- the thread ----------------------------------------------------------------------

    def start(self, idle: float = 1.0) -> None:
        self._thread = threading.Thread(
            target=self._run, args=(idle,), name=f"vigil-deliver-{self.receiver.name}", daemon=True
        )
        self._thread.start()

    def _run(self, idle: float) -> None:
        while True:
            try:
                due = self.step()
            except Exception:  # a receiver bug must not end delivery for good
                log.exception("%s: delivery worker error", self.receiver.name)
                due = self.clock() + idle
            with self._wake:
                if self._stopping:
                    return
                wait = idle if due is None else max(0.0, min(idle, due - self.clock()))
                self._wake.wait(wait)

    def close(self, timeout: float) -> None:
        """Deliver what is owed for up to ``timeout`` seconds; the rest stays journaled."""
        with self._wake:
            self._stopping = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join(timeout)
        deadline = self.clock() + timeout
        while len(self.outbox) and self.clock() < deadline:
            due = self.step()
            if due is None or due > deadline:
                break
            self.sleep(max(0.0, due - self.clock()))
        if len(self.outbox):
            log.warning(
                "%s: %d notification(s) still owed at shutdown; kept in %s",
                self.receiver.name,
                len(self.outbox),
                self.outbox.journal or "memory only",
            )
        try:
            self.receiver.close()
        except Exception as error:
            log.warning("%s: closing failed: %s", self.receiver.name, error)
