"""Freshness and replay: a valid signature on an old or repeated message proves nothing.

*Stale*: the event's time is further than ``max_skew`` from its arrival (the Kafka
message timestamp), either way. A captured event cannot be replayed much later.

*Replay*: an ``event_id`` already seen inside the window, arriving at a different
place in the log. The same message redelivered at the same topic/partition/offset
(at-least-once delivery after a crash or rebalance) is not a replay. Memory is
bounded by ``max_entries``; the oldest ids are forgotten first.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

Position = tuple[str, int, int]


@dataclass
class ReplayGuard:
    window: timedelta = timedelta(hours=24)
    max_entries: int = 500_000
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC), repr=False)
    _seen: OrderedDict[str, tuple[Position, datetime]] = field(default_factory=OrderedDict, repr=False)

    def check(self, event_id: str, position: Position, ts: datetime) -> bool:
        """Record the event; return True when it is a replay of one seen before."""
        # A far-future timestamp must not make the guard forget everything it knows.
        self._forget_older_than(min(ts, self.clock()) - self.window)
        earlier = self._seen.get(event_id)
        if earlier is not None:
            return earlier[0] != position
        self._seen[event_id] = (position, ts)
        if len(self._seen) > self.max_entries:
            self._seen.popitem(last=False)
        return False

    def _forget_older_than(self, horizon: datetime) -> None:
        seen = self._seen
        while seen:
            oldest = next(iter(seen.values()))
            if oldest[1] >= horizon:
                return
            seen.popitem(last=False)


def is_stale(ts: datetime, arrival: datetime | None, max_skew: timedelta) -> bool:
    """Without an arrival time (a file replayed through ``vigil run``) nothing is stale."""
    return arrival is not None and abs(ts - arrival) > max_skew
