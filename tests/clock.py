"""The one clock tests read time from.

``FakeClock`` is moved by hand: monotonic time, wall time and sleep all follow it.
Its wall time starts at the real present (to the millisecond) rather than at a
fixed date, so a test behaves the same on any day it runs, and a fixed date in the
code under test (a key window, a retention rule) meets the same "now" it would in
production. Factories stamp rows with ``wall_now()``: the real time, unless a test
has installed its fake clock with ``installed``, so the rows it builds and the
components it drives agree on what time it is.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta


def _real_now() -> datetime:
    return datetime.now(UTC)


class FakeClock:
    def __init__(self, start: float = 1_000.0, wall_start: datetime | None = None) -> None:
        self.start = start
        self.now = start
        if wall_start is None:
            now = _real_now()
            wall_start = now.replace(microsecond=now.microsecond // 1000 * 1000)
        self.wall_start = wall_start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def wall(self) -> datetime:
        return self.wall_start + timedelta(seconds=self.now - self.start)


_installed: FakeClock | None = None


def wall_now() -> datetime:
    """What factories stamp on rows: the installed clock's wall time, else the real one."""
    return _installed.wall() if _installed is not None else _real_now()


def current() -> FakeClock:
    """The installed clock, so rigs built inside a test share it; else a new one."""
    return _installed if _installed is not None else FakeClock()


@contextmanager
def installed(clock: FakeClock) -> Iterator[FakeClock]:
    """Make ``wall_now`` and ``current`` follow ``clock`` for the duration of a test."""
    global _installed
    previous, _installed = _installed, clock
    try:
        yield clock
    finally:
        _installed = previous
