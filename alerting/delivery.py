"""Owed notifications and the workers that deliver them, one queue per receiver.

Each receiver integration (a Slack channel, a webhook, ...) has an :class:`Outbox`:
an ordered queue kept in the notifier's state database (:mod:`alerting.state`), so
what is owed survives a restart, and a
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
from typing import Any, Protocol, runtime_checkable

from alerting.dispatcher import Ack
from alerting.notifications import Notification
from alerting.records import NotificationRow
from alerting.state import StateStore

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


@runtime_checkable
class StatefulReceiver(Protocol):
    """A receiver that keeps something between deliveries (Slack: the thread of each group).

    ``state`` is saved with every delivery, in the transaction that removes the
    delivered notification from the outbox; ``restore`` gives it back at start.
    """

    def state(self) -> dict[str, Any]: ...

    def restore(self, state: dict[str, Any]) -> None: ...


class Metrics:
    """Counters shared by the manager and its workers; ``snapshot`` for logs and tests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self.on_delivery: Callable[[str, str], None] | None = None
        """Told of every delivery attempt (receiver, result): how a process exports them."""

    def delivery(self, receiver: str, result: str, counter: str) -> None:
        """One attempt to deliver to ``receiver`` ended in ``result``; ``counter`` counts it here."""
        self.inc(counter)
        if self.on_delivery is not None:
            self.on_delivery(receiver, result)

    def inc(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self._counts[name] += amount

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


@dataclass
class Pending:
    row_id: int
    notification: Notification
    attempts: int = 0
    next_attempt: float = 0.0
    last_error: str = ""
    in_flight: bool = False


class Outbox:
    """Notifications owed to one receiver integration, in order, kept in the state database.

    ``owe`` writes a notification inside the caller's transaction (the one that also
    saves the state that produced it); only once that transaction is committed does
    ``reveal`` hand it to delivery, so nothing is delivered that a crash could undo.
    """

    def __init__(self, name: str, state: StateStore, max_pending: int = 10_000) -> None:
        self.name = name
        self.state = state
        self.max_pending = max_pending
        self._lock = threading.Lock()
        self._items = [Pending(row_id, Notification.from_json(doc)) for row_id, doc in state.owed(name)]
        if self._items:
            log.warning("%s: %d notification(s) owed from before, delivering them", name, len(self))

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def pending(self) -> list[Pending]:
        with self._lock:
            return list(self._items)

    def owe(self, notification: Notification) -> int | None:
        """Record the notification as owed (in the open transaction); None when the outbox is full.

        Never takes the outbox's lock: the caller holds the database's write lock, and
        a delivery thread holding ours waits for that one (``remove``).
        """
        if len(self._items) >= self.max_pending:
            return None
        return self.state.owe(self.name, notification.notification_id, notification.to_json())

    def reveal(self, row_id: int, notification: Notification) -> Notification:
        """Queue a committed notification, or fold an ``update`` into its group's waiting message.

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
                    and waiting.notification.kind in ("firing", "update")
                ):
                    folded = _with_kind(notification, waiting.notification)
                    with self.state.transaction():
                        self.state.replace_owed(waiting.row_id, folded.to_json())
                        self.state.settle(row_id, self.name, None)
                    waiting.notification = folded
                    return folded
            self._items.append(Pending(row_id, notification))
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

    def remove(self, item: Pending, receiver_state: dict[str, Any] | None = None) -> None:
        """Done with it (delivered or given up), saved with the receiver's state in one transaction.

        The item is in flight, so nothing folds into it meanwhile. The database is
        written before the lock is taken: nobody waits for this lock while holding
        the database's write lock, which would deadlock with ``reveal``.
        """
        self.state.settle(item.row_id, self.name, receiver_state)
        with self._lock:
            self._items.remove(item)


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
        if isinstance(receiver, StatefulReceiver):
            saved = outbox.state.receiver_state(outbox.name)
            if saved is not None:
                receiver.restore(saved)

    def owe(self, notification: Notification) -> int | None:
        """Inside the caller's transaction: the notification is owed, or refused when full."""
        row_id = self.outbox.owe(notification)
        if row_id is None:
            self.metrics.inc("notifications_overflow")
            self._report(notification, "overflow", 0, f"outbox full ({self.outbox.max_pending})")
            log.error(
                "%s: outbox full, notification %s not queued (recorded in notifications)",
                self.receiver.name,
                notification.notification_id,
            )
        return row_id

    def submit(self, row_id: int, notification: Notification) -> None:
        """After the commit: deliver it (in order, after what is owed before it)."""
        owed = self.outbox.reveal(row_id, notification)
        self._report(owed, "pending", 0, "")
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
                self.metrics.delivery(self.receiver.name, "retry", "delivery_retries")
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
            self.outbox.remove(item, self._receiver_state())
            self.metrics.delivery(self.receiver.name, "failed", "notifications_failed")
            self._report(notification, "failed", item.attempts, item.last_error)
            log.error(
                "%s: notification %s cannot be delivered: %s",
                self.receiver.name,
                notification.notification_id,
                error,
            )
            return True
        self.outbox.remove(item, self._receiver_state())
        self.metrics.delivery(self.receiver.name, "delivered", "notifications_delivered")
        self._report(notification, "delivered", item.attempts, "")
        return True

    def _receiver_state(self) -> dict[str, Any] | None:
        return self.receiver.state() if isinstance(self.receiver, StatefulReceiver) else None

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
        """Deliver what is owed for up to ``timeout`` seconds; the rest stays owed in the state database."""
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
                self.outbox.state.path or "memory only",
            )
        try:
            self.receiver.close()
        except Exception as error:
            log.warning("%s: closing failed: %s", self.receiver.name, error)
