"""Freshness and replay: a valid signature on an old or repeated message proves nothing.

*Stale*: the event's time is further than ``max_skew`` from its arrival (the Kafka
message timestamp), either way. A captured event cannot be replayed much later.

*Replay*: an ``event_id`` already seen inside the window, arriving as another message.
At-least-once delivery hands a message over again after a crash or a rebalance; that
is a redelivery, not a replay. Kafka never writes a new message below a partition's
end, so a message at or below the highest offset already judged on its partition is
a redelivery, and it gets the answer its first delivery got: the guard keeps, per
(topic, partition), that offset, and the places of the messages it judged replays
(rare, so they cost nothing in ordinary traffic). No place is kept per id.

Memory covers the whole window, whatever the rate, in 8 bytes per event: an id is
remembered as a 64-bit digest in the time bucket of its event time (the window is cut
into ``BUCKETS`` of them). New ids collect in one small dict and are sealed into their
buckets' sorted numpy arrays every ``SEAL_AT`` ids; a bucket is dropped whole once
event time has moved a window past it, so an id is remembered for at least the window
and at most 1/64 longer. At 20,000 events/s and a 300 s window that is 6 million ids
in about 48 MB. ``max_bytes`` is a safety limit, not the way the window is kept:
exceeding it forgets the oldest bucket and logs an error naming how far back the
guard still sees.

The digests are Python's ``hash`` (SipHash, keyed at random per process), so a
producer cannot craft ids that collide; two distinct ids collide with probability
about n / 2**64 (n ids in the window).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np

log = logging.getLogger(__name__)

Position = tuple[str, int, int]
BUCKETS = 64
SEAL_AT = 16_384
"""Ids collected in the pending dict (about 1.5 MB) before they are sealed into arrays."""
SEALED_BYTES_PER_ID = 8
_U64 = 0xFFFF_FFFF_FFFF_FFFF
_NONE = np.empty(0, dtype=np.uint64)


def _digest(value: str | Position) -> int:
    return hash(value) & _U64


def _holds(sorted_digests: np.ndarray, digests: np.ndarray) -> np.ndarray:
    """For each digest, whether it is in the sorted array."""
    if not len(sorted_digests):
        return np.zeros(len(digests), dtype=bool)
    index = np.minimum(np.searchsorted(sorted_digests, digests), len(sorted_digests) - 1)
    found: np.ndarray = sorted_digests[index] == digests
    return found


class _Bucket:
    """The sealed ids of one slice of event time, and the places of its replays, sorted."""

    __slots__ = ("ids", "replays")

    def __init__(self) -> None:
        self.ids = _NONE
        self.replays = _NONE

    def add(self, kind: str, digests: np.ndarray) -> None:
        """Merge ``digests`` into the sorted ``ids`` or ``replays``."""
        setattr(self, kind, np.sort(np.concatenate([getattr(self, kind), digests])))

    def nbytes(self) -> int:
        return int(self.ids.nbytes + self.replays.nbytes)


@dataclass
class ReplayGuard:
    window: timedelta = timedelta(hours=24)
    max_bytes: int = 256 * 2**20
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC), repr=False)
    _buckets: dict[int, _Bucket] = field(default_factory=dict, repr=False)
    _pending: dict[int, int] = field(default_factory=dict, repr=False)
    """Ids not sealed yet: id digest -> bucket."""
    _pending_replays: dict[int, int] = field(default_factory=dict, repr=False)
    """Places of replays not sealed yet: place digest -> bucket."""
    _judged: dict[tuple[str, int], int] = field(default_factory=dict, repr=False)
    """The highest offset judged per (topic, partition)."""

    def __post_init__(self) -> None:
        self._width = self.window.total_seconds() / BUCKETS

    def check(self, event_id: str, position: Position, ts: datetime) -> bool:
        """Record the event; return True when it is a replay of one seen before."""
        return self.check_many([(event_id, position, ts)])[0]

    def check_many(self, events: Sequence[tuple[str, Position, datetime]]) -> list[bool]:
        """``check`` for each event in order, the sealed arrays searched once per batch."""
        if not events:
            return []
        now = self.clock()
        # A far-future timestamp must not make the guard forget everything it knows.
        self._forget_older_than(min(min(ts, now) for _, _, ts in events) - self.window)
        digests = [_digest(event_id) for event_id, _, _ in events]
        sealed = self._sealed(digests)
        pending, judged, width = self._pending, self._judged, self._width
        replays = []
        for (_, position, ts), digest, known in zip(events, digests, sealed, strict=True):
            known = known or digest in pending
            topic, partition, offset = position
            if offset <= judged.get((topic, partition), -1):
                replays.append(known and self._judged_replay(position))
                if not known:  # judged for the first time now (refused before its key was added, say)
                    pending[digest] = int(ts.timestamp() // width)
                continue
            judged[topic, partition] = offset
            if known:
                self._pending_replays[_digest(position)] = int(ts.timestamp() // width)
            else:
                pending[digest] = int(ts.timestamp() // width)
            replays.append(known)
        if len(pending) >= SEAL_AT:
            self._seal()
        self._enforce_budget()
        return replays

    def nbytes(self) -> int:
        """Memory held for remembered ids and replays, in bytes (the pending dicts estimated)."""
        sealed = sum(bucket.nbytes() for bucket in self._buckets.values())
        pending = sum(sys.getsizeof(d) + 76 * len(d) for d in (self._pending, self._pending_replays) if d)
        return sealed + pending

    def __len__(self) -> int:
        return sum(len(b.ids) for b in self._buckets.values()) + len(self._pending)

    def _judged_replay(self, position: Position) -> bool:
        place = _digest(position)
        if place in self._pending_replays:
            return True
        wanted = np.array([place], dtype=np.uint64)
        return any(bool(_holds(b.replays, wanted)[0]) for b in self._buckets.values() if len(b.replays))

    def _seal(self) -> None:
        for kind, pending in (("ids", self._pending), ("replays", self._pending_replays)):
            if not pending:
                continue
            digests = np.fromiter(pending, dtype=np.uint64, count=len(pending))
            buckets = np.fromiter(pending.values(), dtype=np.int64, count=len(pending))
            for key in np.unique(buckets).tolist():
                bucket = self._buckets.get(key)
                if bucket is None:
                    bucket = self._buckets[key] = _Bucket()
                bucket.add(kind, digests[buckets == key])
        self._pending, self._pending_replays = {}, {}

    def _sealed(self, digests: list[int]) -> list[bool]:
        if not self._buckets:
            return [False] * len(digests)
        wanted = np.fromiter(digests, dtype=np.uint64, count=len(digests))
        found = np.zeros(len(digests), dtype=bool)
        for bucket in self._buckets.values():
            found |= _holds(bucket.ids, wanted)
        return found.tolist()

    def _forget_older_than(self, horizon: datetime) -> None:
        """Drop the buckets whose every id is older than ``horizon``."""
        last_expired = int(horizon.timestamp() // self._width) - 1
        for key in [k for k in self._buckets if k <= last_expired]:
            del self._buckets[key]
        self._pending = _unexpired(self._pending, last_expired)
        self._pending_replays = _unexpired(self._pending_replays, last_expired)

    def _enforce_budget(self) -> None:
        while len(self._buckets) > 1 and self.nbytes() > self.max_bytes:
            del self._buckets[min(self._buckets)]
            kept = datetime.fromtimestamp(min(self._buckets) * self._width, UTC)
            log.error(
                "replay memory is over its %d MiB budget: ids older than %s are forgotten, so the "
                "replay window is shorter than the configured %s; raise identity.replay_max_mib",
                self.max_bytes // 2**20,
                kept.isoformat(),
                self.window,
            )


def _unexpired(pending: dict[int, int], last_expired: int) -> dict[int, int]:
    """The pending digests (digest -> bucket) of buckets after ``last_expired``."""
    if not pending or min(pending.values()) > last_expired:
        return pending
    return {digest: key for digest, key in pending.items() if key > last_expired}


def is_stale(ts: datetime, arrival: datetime | None, max_skew: timedelta) -> bool:
    """Without an arrival time (a file replayed through ``vigil run``) nothing is stale."""
    return arrival is not None and abs(ts - arrival) > max_skew
