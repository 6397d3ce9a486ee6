"""Repeated log lines, shown once per window with a count instead of thousands of times.

During a broker or store outage the same warning comes back on every retry and every
poll: ~7,000 lines in 70 s bury the first line that said what happened, and cost
disk. ``RepeatLimiter`` passes the first record of each distinct message (logger,
level and text after formatting its arguments), then holds identical ones for
``window`` seconds; the next one let through says how many were held meanwhile.
Different messages are never held back, so nothing new is hidden.

>>> clock = iter([0.0, 1.0, 2.0, 61.0]).__next__
>>> limiter = RepeatLimiter(window=60.0, clock=clock)
>>> record = lambda: logging.LogRecord("kafka", logging.WARNING, "", 0, "broker down", None, None)
>>> [limiter.filter(record()) for _ in range(3)]
[True, False, False]
>>> last = record(); limiter.filter(last), last.getMessage()
(True, 'broker down (and 2 more like it in the last 61 s)')
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Seen:
    shown_at: float
    held: int = 0


class RepeatLimiter(logging.Filter):
    def __init__(
        self, window: float = 60.0, clock: Callable[[], float] = time.monotonic, max_messages: int = 4096
    ) -> None:
        super().__init__()
        self.window = window
        self.clock = clock
        self.max_messages = max_messages
        self._seen: OrderedDict[tuple[str, int, str], _Seen] = OrderedDict()

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.levelno, record.getMessage())
        now = self.clock()
        seen = self._seen.get(key)
        if seen is not None and now - seen.shown_at < self.window:
            seen.held += 1
            return False
        if seen is not None and seen.held:
            record.msg = f"{key[2]} (and {seen.held} more like it in the last {now - seen.shown_at:.0f} s)"
            record.args = None
        self._seen[key] = _Seen(now)
        self._seen.move_to_end(key)
        if len(self._seen) > self.max_messages:
            self._seen.popitem(last=False)
        return True
