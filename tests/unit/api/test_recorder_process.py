"""The recorder process as the API process sees it: started, restarted, given up on, stopped."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from api.recorder_process import RecorderProcess
from tests.unit.api import recorders
from vigil.settings import Settings


class Ticks:
    """Monotonic seconds moved by hand: back-off is checked without waiting for it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _wait_dead(recorder: RecorderProcess) -> None:
    deadline = time.monotonic() + 10
    while recorder.state == "running":
        assert time.monotonic() < deadline, "the stand-in recorder did not exit"
        time.sleep(0.01)


def test_stop_lets_the_recorder_drain_and_exit_cleanly(tmp_path: Path) -> None:
    recorder = RecorderProcess(Settings(data_dir=tmp_path), target=recorders.drains_when_told).start()
    assert recorder.state == "running"
    recorder.stop(grace=5.0)
    assert recorder.failure is None
    assert recorder.stored == 7, "what the recorder stored while draining is counted"


def test_a_recorder_that_cannot_open_the_store_fails_the_start_with_its_own_error(tmp_path: Path) -> None:
    with pytest.raises(PermissionError, match="not writable"):
        RecorderProcess(Settings(data_dir=tmp_path), target=recorders.cannot_open_the_store).start()


def test_a_dead_recorder_is_restarted_after_a_back_off_until_it_keeps_dying(tmp_path: Path) -> None:
    ticks = Ticks()
    recorder = RecorderProcess(
        Settings(data_dir=tmp_path), target=recorders.dies_once_started, max_restarts=2, clock=ticks
    ).start()
    first = recorder.pid
    _wait_dead(recorder)
    recorder.check()  # noticed: restart due in 1 s
    assert (recorder.state, recorder.restarts) == ("restarting", 0)
    ticks.now += 1.0
    recorder.check()
    assert recorder.restarts == 1
    assert recorder.pid != first
    _wait_dead(recorder)
    recorder.check()  # second death in a row: 2 s
    ticks.now += 1.0
    recorder.check()
    assert recorder.restarts == 1, "the back-off doubles"
    ticks.now += 1.0
    recorder.check()
    assert recorder.restarts == 2
    _wait_dead(recorder)
    recorder.check()
    assert recorder.state == "failed"
    assert "3 times in a row" in (recorder.failure or "")


def test_a_recorder_that_ran_long_enough_starts_a_fresh_count_of_deaths(tmp_path: Path) -> None:
    ticks = Ticks()
    recorder = RecorderProcess(
        Settings(data_dir=tmp_path),
        target=recorders.dies_once_started,
        max_restarts=1,
        healthy_seconds=60.0,
        clock=ticks,
    ).start()
    for _ in range(3):  # each time it "ran" a minute before dying: never given up on
        _wait_dead(recorder)
        ticks.now += 60.0
        recorder.check()
        ticks.now += 1.0
        recorder.check()
        assert recorder.failure is None
    assert recorder.restarts == 3
    recorder.stop(grace=0.0)


def test_stop_is_bounded_even_when_the_recorder_hangs(tmp_path: Path) -> None:
    recorder = RecorderProcess(
        Settings(data_dir=tmp_path), target=recorders.never_finishes, close_seconds=0.5
    ).start()
    started = time.monotonic()
    recorder.stop(grace=0.5)
    assert time.monotonic() - started < 5.0
    assert recorder.state == "failed", "killed past the grace period and the closing time"
    assert "still running" in (recorder.failure or "")
