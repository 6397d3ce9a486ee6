"""The decision journal: records survive restarts and store outages, torn tails are skipped."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from alerting.gate import AlertGate
from api.journal import Journal, JournalReader
from api.recorder import JournalRecorder
from streams.checkpoint import BatchCheckpoint
from tests.clock import FakeClock
from tests.unit.api.rig import build_rig, question


def test_offsets_continue_across_restarts_and_a_torn_tail_is_skipped(tmp_path: Path) -> None:
    journal = Journal(tmp_path, segment_bytes=64)
    assert journal.append([b'{"n":0}', b'{"n":1}']) == 0
    assert journal.append([b'{"n":2}'] * 8) == 2  # rolls into new segments on the way
    journal.close()
    (tmp_path / journal.active).open("ab").write(b'{"n":tor')  # a crash mid-write
    reopened = Journal(tmp_path, segment_bytes=64)
    assert reopened.next_offset == 10
    reopened.append([b'{"n":10}'])
    batch = reopened.read(100, reopened.position())
    assert len(batch.lines) == 11
    assert batch.lines[-1] == b'{"n":10}'
    assert b"tor" not in b"".join(batch.lines)


class FlakyStore:
    """Refuses the first ``failures`` writes, as a store that is briefly down."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.written: list[dict[str, Any]] = []

    def write(self, tables: dict[str, Any], alerts_stored: Callable[[], None] | None = None) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("store unavailable")
        self.written.append(tables)


class Alerts:
    def __init__(self) -> None:
        self.alerts: list[Any] = []

    def notify(self, alert: Any) -> None:
        self.alerts.append(alert)


def test_decisions_reach_the_store_after_an_outage_with_alerts_for_denies(
    tmp_path: Path, clock: FakeClock
) -> None:
    rig = build_rig(tmp_path, clock)
    rig.ask(rig.bearer("svc-checkout"), question(), question(resource=("model", "legacy-scorer")))
    store, alerts = FlakyStore(failures=2), Alerts()
    recorder = JournalRecorder(
        rig.journal,
        lambda stopping: BatchCheckpoint(store, alerts, stopping=stopping, max_backoff=0.01),
        AlertGate(clock=clock, wall_clock=clock.wall),
    )
    assert recorder.drain_once() == 2
    assert recorder.drain_once() == 0
    (tables,) = store.written
    assert [d.decision for d in tables["decisions"]] == ["deny", "deny"]
    assert [e.topic for e in tables["events"]] == ["api", "api"]
    assert len(tables["findings"]) == 2
    assert alerts.alerts, "a deny of high severity raises an alert"
    # Stored and committed: a restart does not store them again.
    again = JournalRecorder(
        Journal(rig.journal.directory),
        lambda stopping: BatchCheckpoint(store, alerts, stopping=threading.Event()),
        AlertGate(clock=clock, wall_clock=clock.wall),
    )
    assert again.drain_once() == 0


def test_a_failed_append_leaves_no_torn_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    journal = Journal(tmp_path)
    journal.append([b'{"n":0}'])
    real_write = os.write

    def disk_full_midway(fd: int, data: Any) -> int:
        real_write(fd, bytes(data)[:3])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", disk_full_midway)
    with pytest.raises(OSError, match="No space"):
        journal.append([b'{"n":1}'])
    monkeypatch.setattr(os, "write", real_write)
    journal.append([b'{"n":2}'])
    assert journal.read(10, journal.position()).lines == [b'{"n":0}', b'{"n":2}']


def test_a_reader_in_another_process_waits_for_an_append_under_way_and_skips_a_tear(tmp_path: Path) -> None:
    writer = Journal(tmp_path)
    writer.append([b'{"n":0}'])
    reader = JournalReader(tmp_path)  # knows only the files, as the recorder process does
    with (tmp_path / writer.active).open("ab") as segment:
        segment.write(b'{"n":1')  # the newest segment: an append still being written
    batch = reader.read(10, reader.position())
    assert batch.lines == [b'{"n":0}']
    with (tmp_path / writer.active).open("ab") as segment:
        segment.write(b"}\n")
    assert reader.read(10, batch.end).lines == [b'{"n":1}']
    # The writer's process ended mid-append; the next one writes a newer segment.
    with (tmp_path / writer.active).open("ab") as segment:
        segment.write(b'{"n":tor')
    writer.close()
    Journal(tmp_path).append([b'{"n":2}'])
    assert reader.read(10, batch.end).lines == [b'{"n":1}', b'{"n":2}']


class SlowStore:
    """Stores, but each write takes ``seconds``: a store under load."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.rows = 0

    def write(self, tables: dict[str, Any], alerts_stored: Callable[[], None] | None = None) -> None:
        time.sleep(self.seconds)
        self.rows += len(tables["decisions"])


def test_stopping_drains_no_longer_than_the_grace_period_and_keeps_the_rest(
    tmp_path: Path, clock: FakeClock
) -> None:
    rig = build_rig(tmp_path, clock)
    for _ in range(10):
        rig.ask(rig.bearer("svc-checkout"), question())
    store = SlowStore(0.2)
    recorder = JournalRecorder(
        rig.journal,
        lambda stopping: BatchCheckpoint(store, Alerts(), stopping=stopping),
        AlertGate(clock=clock, wall_clock=clock.wall),
        batch_size=1,
    ).start()
    started = time.monotonic()
    recorder.stop(grace=0.3)
    assert time.monotonic() - started < 1.5, "one batch past the grace period at most"
    assert 0 < store.rows < 10
    left = JournalReader(rig.journal.directory)
    assert len(left.read(100, left.position()).lines) == 10 - store.rows, "the rest waits for the next start"
