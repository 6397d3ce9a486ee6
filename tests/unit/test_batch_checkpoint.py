"""Store, publish, then commit: nothing is committed that was not stored and confirmed."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from schemas.records import AlertRow
from streams.checkpoint import BatchCheckpoint, CheckpointFailedError, Offsets, StoreAbortedError
from streams.outputs import KafkaOutputs
from tests.unit.test_kafka_outputs import Producer, _rejected
from vigil.pipeline import BatchResult
from vigil.settings import Settings


class Journal:
    """Everything the sinks did, in the order they did it."""

    def __init__(self) -> None:
        self.entries: list[str] = []
        self.lock = threading.Lock()

    def log(self, entry: str) -> None:
        with self.lock:
            self.entries.append(entry)


class Store:
    """Stores findings and alerts first, as ``ClickHouseStore`` does; the first ``failures``
    attempts fail before anything is stored, the next ``failures_after_alerts`` after."""

    def __init__(
        self,
        journal: Journal,
        failures: int = 0,
        gate: threading.Event | None = None,
        failures_after_alerts: int = 0,
    ) -> None:
        self.journal = journal
        self.failures = failures
        self.failures_after_alerts = failures_after_alerts
        self.gate = gate
        self.attempts = 0

    def write(self, tables: dict[str, Any], alerts_stored: Callable[[], None] | None = None) -> None:
        self.attempts += 1
        if self.gate is not None:
            assert self.gate.wait(10), "the test never opened the gate"
        if self.attempts <= self.failures:
            raise ConnectionError("clickhouse unavailable")
        if tables["alerts"] and alerts_stored is not None:
            self.journal.log(f"store alerts {len(tables['alerts'])}")
            alerts_stored()
        if self.attempts <= self.failures + self.failures_after_alerts:
            raise ConnectionError("clickhouse went away")
        self.journal.log("store the rest")


class Outputs:
    def __init__(self, journal: Journal, fail: bool = False) -> None:
        self.journal = journal
        self.fail = fail

    def send_alerts(self, result: BatchResult) -> None:
        self.journal.log(f"send {len(result.alerts)}")

    def publish(self, result: BatchResult, alerts_sent: bool = False) -> None:
        if self.fail:
            raise RuntimeError("broker did not confirm")
        self.journal.log(f"publish {0 if alerts_sent else len(result.alerts)}")


class Notifiers:
    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    def notify(self, alerts: Sequence[AlertRow]) -> None:
        for alert in alerts:
            self.journal.log(f"notify {alert.fingerprint}")


def _alert(fingerprint: str) -> AlertRow:
    fields: dict[str, Any] = dict.fromkeys(AlertRow._fields, "")
    fields.update(fingerprint=fingerprint, ts=datetime(2026, 1, 1, tzinfo=UTC))
    return AlertRow(**fields)


def _batch(*fingerprints: str) -> BatchResult:
    return BatchResult(alerts=[_alert(f) for f in fingerprints])


def _checkpoint(journal: Journal, store: Store, outputs: Outputs | None = None) -> BatchCheckpoint:
    def commit(offsets: Offsets) -> None:
        journal.log(f"commit {sorted(offsets.items())}")

    return BatchCheckpoint(
        store, Notifiers(journal), outputs=outputs or Outputs(journal), commit=commit, max_backoff=0.01
    )


def test_a_batch_is_stored_published_notified_then_committed_in_order() -> None:
    journal = Journal()
    checkpoint = _checkpoint(journal, Store(journal))
    checkpoint.add(_batch("a"), {("t", 0): 10})
    checkpoint.add(_batch(), {("t", 0): 20, ("t", 1): 5})
    checkpoint.flush()
    checkpoint.close()
    assert journal.entries == [
        "store alerts 1",
        "send 1",
        "store the rest",
        "publish 0",
        "notify a",
        "commit [(('t', 0), 10)]",
        "store the rest",
        "publish 0",
        "commit [(('t', 0), 20), (('t', 1), 5)]",
    ]


def test_alerts_leave_once_before_the_rest_is_stored_even_when_the_rest_is_retried() -> None:
    journal = Journal()
    store = Store(journal, failures_after_alerts=2)
    checkpoint = _checkpoint(journal, store)
    checkpoint.add(_batch("a", "b"), {("t", 0): 3})
    checkpoint.flush()
    checkpoint.close()
    assert store.attempts == 3
    assert journal.entries == [
        "store alerts 2",
        "send 2",
        "store alerts 2",
        "store alerts 2",
        "store the rest",
        "publish 0",
        "notify a",
        "notify b",
        "commit [(('t', 0), 3)]",
    ]


def test_without_outputs_a_batch_is_stored_in_one_pass_then_its_alerts_notified() -> None:
    journal = Journal()
    checkpoint = BatchCheckpoint(Store(journal), Notifiers(journal))
    checkpoint.add(_batch("a"))
    checkpoint.flush()
    checkpoint.close()
    assert journal.entries == ["store the rest", "notify a"]


def test_storage_errors_are_retried_until_the_batch_is_stored() -> None:
    journal = Journal()
    store = Store(journal, failures=3)
    checkpoint = _checkpoint(journal, store)
    checkpoint.add(_batch(), {("t", 0): 1})
    checkpoint.flush()
    assert store.attempts == 4
    assert journal.entries[-1] == "commit [(('t', 0), 1)]"


def test_a_stopping_process_abandons_an_unstored_batch_instead_of_committing_it() -> None:
    journal = Journal()
    checkpoint = _checkpoint(journal, Store(journal, failures=10**6))
    checkpoint.stopping.set()
    checkpoint.add(_batch("a"), {("t", 0): 1})
    with pytest.raises(StoreAbortedError):
        checkpoint.flush()
    assert journal.entries == []


def test_an_unconfirmed_publish_leaves_the_batch_and_every_later_one_uncommitted() -> None:
    journal = Journal()
    checkpoint = _checkpoint(journal, Store(journal), Outputs(journal, fail=True))
    checkpoint.add(_batch("a"), {("t", 0): 1})
    with pytest.raises(RuntimeError, match="did not confirm"):
        checkpoint.add(_batch("b"), {("t", 0): 2})
    with pytest.raises(CheckpointFailedError):
        checkpoint.flush()
    checkpoint.close()
    assert [e for e in journal.entries if not e.startswith(("store", "send"))] == []


def test_the_next_batch_is_processed_while_one_is_stored_but_never_two_are_in_flight() -> None:
    journal = Journal()
    gate = threading.Event()
    checkpoint = _checkpoint(journal, Store(journal, gate=gate))
    checkpoint.add(_batch("a"), {("t", 0): 1})  # returns at once: storing happens on the writer thread
    assert checkpoint.pending
    assert journal.entries == []

    second = threading.Thread(target=checkpoint.add, args=(_batch("b"), {("t", 0): 2}))
    second.start()
    second.join(0.3)
    assert second.is_alive(), "a second batch went in while the first was still being stored"
    gate.set()
    second.join(10)
    checkpoint.flush()
    checkpoint.close()
    commits = [e for e in journal.entries if e.startswith("commit")]
    assert commits == ["commit [(('t', 0), 1)]", "commit [(('t', 0), 2)]"]


def test_a_999999_byte_message_then_a_storage_error_and_nothing_is_stuck() -> None:
    """A poison-sized dead letter and a store outage in a row: both batches commit, in order."""
    journal = Journal()
    producer = Producer()
    outputs = KafkaOutputs(
        Settings(),
        producer,
        store=None,
        deadletter_limit=1_000_000,  # type: ignore[arg-type]
    )
    store = Store(journal, failures=2)
    checkpoint = _checkpoint(journal, store, outputs)  # type: ignore[arg-type]
    huge = b"x" * 999_999
    checkpoint.add(BatchResult(rejected=[_rejected(huge)]), {("t", 0): 1})
    checkpoint.add(_batch("a"), {("t", 0): 2})
    checkpoint.flush()
    checkpoint.close()
    assert store.attempts == 4  # the first batch was retried through the outage
    assert [e for e in journal.entries if e.startswith("commit")] == [
        "commit [(('t', 0), 1)]",
        "commit [(('t', 0), 2)]",
    ]
    (dead, alert) = producer.sent
    assert dead[0] == "ai.deadletter"
    assert huge.startswith(dead[1])
    assert dead[3]["vigil.sha256"] == hashlib.sha256(huge).hexdigest().encode()
    assert alert[0] == "ai.alerts"
