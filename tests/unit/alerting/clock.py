"""A clock tests move by hand: monotonic time, wall time and sleep all follow it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

START_WALL = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self, start: float = 1_000.0) -> None:
        self.start = start
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def wall(self) -> datetime:
        return START_WALL + timedelta(seconds=self.now - self.start)
