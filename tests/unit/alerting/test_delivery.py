"""alerting.delivery: ordered outboxes in the state database and their retrying workers."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from alerting.delivery import DeliveryError, DeliveryWorker, Metrics, Outbox
from alerting.dispatcher import Ack
from alerting.notifications import AlertSnapshot, Notification, NotificationKind
from alerting.records import NotificationRow
from alerting.state import StateStore
from tests.clock import FakeClock

T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


def note(group: str, seq: int, kind: NotificationKind = "firing", count: int = 1) -> Notification:
    alert = AlertSnapshot(
        alert_id=f"a-{group}",
        fingerprint=f"f-{group}",
        state="firing",
        severity="high",
        title=f"[HIGH] rule on {group}",
        summary="something happened",
        labels={"model": group, "rule": "rule"},
        first_seen=T0,
        last_seen=T0,
        occurrences=count,
        new_occurrences=count,
        controls=("nist-ai-rmf:MEASURE-2.7",),
    )
    return Notification(
        notification_id=f"{group}-{seq}",
        group_id=group,
        receiver="ml",
        kind=kind,
        group_labels={"model": group},
        alerts=(alert,),
        created_at=T0,
        window_seconds=60,
        resolve_timeout=300,
        seq=seq,
    )


class Flaky:
    """A receiver that fails while ``down`` (or with ``error``) and records what it got."""

    name = "test/flaky"

    def __init__(self) -> None:
        self.down = False
        self.error: DeliveryError | None = None
        self.got: list[str] = []

    def deliver(self, notification: Notification) -> None:
        if self.error is not None:
            raise self.error
        if self.down:
            raise DeliveryError("HTTP 503", retryable=True)
        self.got.append(
            f"{notification.notification_id}:{notification.kind}:{notification.alerts[0].occurrences}"
        )

    def poll(self) -> list[Ack]:
        return []

    def close(self) -> None:
        pass


def worker(receiver: Flaky, outbox: Outbox, clock: FakeClock, rows: list[NotificationRow]) -> DeliveryWorker:
    return DeliveryWorker(
        receiver, outbox, clock, clock.wall, rows.append, Metrics(), lambda acks: None, sleep=clock.sleep
    )


def outbox(state: StateStore | None = None, max_pending: int = 10_000) -> Outbox:
    return Outbox("ml", state or StateStore(), max_pending)


def put(box: Outbox, notification: Notification) -> Notification:
    """What the manager does: owe it in a transaction, then reveal it once committed."""
    with box.state.transaction():
        row_id = box.owe(notification)
    assert row_id is not None
    return box.reveal(row_id, notification)


def submit(w: DeliveryWorker, notification: Notification) -> None:
    with w.outbox.state.transaction():
        row_id = w.owe(notification)
    if row_id is not None:
        w.submit(row_id, notification)


def test_notifications_survive_a_restart_in_the_state_database(tmp_path: Path) -> None:
    first = outbox(StateStore(tmp_path / "state.sqlite"))
    for seq, group in enumerate(["a", "b", "c"], start=1):
        put(first, note(group, seq))
    head = first.head()
    assert head is not None
    first.remove(head)
    first.state.close()
    again = outbox(StateStore(tmp_path / "state.sqlite"))
    assert [p.notification.notification_id for p in again.pending()] == ["b-2", "c-3"]
    assert again.pending()[0].notification == note("b", 2)


def test_a_notification_owed_in_a_rolled_back_transaction_is_not_owed(tmp_path: Path) -> None:
    state = StateStore(tmp_path / "state.sqlite")
    box = outbox(state)
    try:
        with state.transaction():
            box.owe(note("a", 1))
            raise RuntimeError("crash before commit")
    except RuntimeError:
        pass
    assert outbox(StateStore(tmp_path / "state.sqlite")).pending() == []


def test_waiting_updates_fold_into_the_groups_waiting_message(tmp_path: Path) -> None:
    box = outbox(StateStore(tmp_path / "state.sqlite"))
    put(box, note("a", 1, "firing", count=1))
    put(box, note("b", 2, "firing"))
    folded = put(box, note("a", 3, "update", count=40))
    assert folded.notification_id == "a-1"
    assert folded.kind == "firing"
    put(box, note("a", 4, "changed", count=41))
    put(box, note("a", 5, "update", count=50))
    expected = [("a-1", "firing"), ("b-2", "firing"), ("a-4", "changed"), ("a-5", "update")]
    owed = [(p.notification.notification_id, p.notification.kind) for p in box.pending()]
    assert owed == expected
    assert box.pending()[0].notification.alerts[0].occurrences == 40
    restored = outbox(StateStore(tmp_path / "state.sqlite")).pending()
    assert [(p.notification.notification_id, p.notification.kind) for p in restored] == expected
    assert restored[0].notification.alerts[0].occurrences == 40


def test_a_full_outbox_refuses_and_says_so(clock: FakeClock) -> None:
    rows: list[NotificationRow] = []
    w = worker(Flaky(), outbox(max_pending=1), clock, rows)
    submit(w, note("a", 1))
    submit(w, note("b", 2))
    assert [(r.notification_id, r.status) for r in rows] == [("a-1", "pending"), ("b-2", "overflow")]
    assert w.metrics.snapshot()["notifications_overflow"] == 1


def test_an_outage_holds_the_line_then_everything_goes_out_in_order(clock: FakeClock) -> None:
    receiver, rows = Flaky(), []
    w = worker(receiver, outbox(), clock, rows)
    receiver.down = True
    attempts_at = []
    for seq, group in enumerate("abc", start=1):
        submit(w, note(group, seq))
    while clock.now < clock.start + 300:
        due = w.step()
        attempts_at.append(clock.now)
        assert due is not None
        clock.now = due
    assert receiver.got == []
    gaps = [b - a for a, b in itertools.pairwise(attempts_at)]
    assert gaps[:5] == [1, 2, 4, 8, 16]
    assert max(gaps) == 60
    receiver.down = False
    assert w.step() is None
    assert receiver.got == ["a-1:firing:1", "b-2:firing:1", "c-3:firing:1"]
    delivered = [r for r in rows if r.status == "delivered"]
    assert [r.notification_id for r in delivered] == ["a-1", "b-2", "c-3"]
    assert delivered[0].attempts > 8


def test_errors_a_retry_cannot_fix_fail_that_notification_and_move_on(clock: FakeClock) -> None:
    receiver, rows = Flaky(), []
    w = worker(receiver, outbox(), clock, rows)
    receiver.error = DeliveryError("Slack API error channel_not_found (HTTP 200)", retryable=False)
    submit(w, note("a", 1))
    assert w.step() is None
    [failed] = [r for r in rows if r.status == "failed"]
    assert "channel_not_found" in failed.last_error
    assert w.metrics.snapshot()["notifications_failed"] == 1
    receiver.error = None
    submit(w, note("b", 2))
    w.step()
    assert receiver.got == ["b-2:firing:1"]


def test_close_delivers_what_it_can_in_time_and_keeps_the_rest(clock: FakeClock, tmp_path: Path) -> None:
    receiver = Flaky()
    w = worker(receiver, outbox(StateStore(tmp_path / "state.sqlite")), clock, [])
    receiver.down = True
    submit(w, note("a", 1))
    w.close(timeout=5)
    assert [
        p.notification.notification_id for p in outbox(StateStore(tmp_path / "state.sqlite")).pending()
    ] == ["a-1"]


def test_notification_json_round_trip() -> None:
    original = replace(note("a", 7, "repeat"), extra={"k": "v"})
    assert Notification.from_json(original.to_json()) == original
