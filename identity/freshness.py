"""Freshness and replay: a valid signature on an old or repeated message proves nothing.

*Stale*: the event's time is further than ``max_skew`` from its arrival (the Kafka
message timestamp), either way. A captured event cannot be replayed much later.

*Replay*: an ``event_id`` already seen inside the window, arriving at a different
place in the log. The same message redelivered at the same topic/partition/offset
(at-least-once delivery after a crash or rebalance) is not a replay.

Memory covers the whole window, whatever the rate, in 12 bytes per event: an id is
remembered as a 64-bit digest and its place in the log as a 32-bit digest, in the
time bucket of its event time (the window is cut into ``BUCKETS`` of them). New ids
collect in one small dict and are sealed into their buckets' sorted numpy arrays every
``SEAL_AT`` ids; a bucket is dropped whole once event time has moved a window past
it, so an id is remembered for at least the window and at most 1/64 longer. At 20,000
events/s and a 300 s window that is 6 million ids in about 72 MB. ``max_bytes`` is a
safety limit, not the way the window is kept: exceeding it forgets the oldest bucket
and logs an error naming how far back the guard still sees.

The digests are Python's ``hash`` (SipHash, keyed at random per process), so a
producer cannot craft ids that collide; two distinct ids collide with probability
about n / 2**64 (n ids in the window). A collision of place digests (1 in 2**32) would
take a replay for a redelivery.
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
SEALED_BYTES_PER_ID = 12
_U64 = 0xFFFF_FFFF_FFFF_FFFF
_U32 = 0xFFFF_FFFF


def _id_digest(event_id: str) -> int:
    return hash(event_id) & _U64


def _place_digest(position: Position) -> int:
    return hash(position) & _U32


class _Bucket:
    """The sealed ids of one slice of event time, sorted, with their place digests."""

    __slots__ = ("ids", "places")

    def __init__(self) -> None:
        self.ids = np.empty(0, dtype=np.uint64)
        self.places = np.empty(0, dtype=np.uint32)

    def add(self, ids: np.ndarray, places: np.ndarray) -> None:
        ids, places = np.concatenate([self.ids, ids]), np.concatenate([self.places, places])
        order = np.argsort(ids, kind="stable")
        self.ids, self.places = ids[order], places[order]

    def places_of(self, digests: np.ndarray) -> np.ndarray:
        """For each digest, its place digest if it is in this bucket, else -1."""
        found = np.full(len(digests), -1, dtype=np.int64)
        index = np.minimum(np.searchsorted(self.ids, digests), len(self.ids) - 1)
        hit = self.ids[index] == digests
        found[hit] = self.places[index[hit]]
        return found


@dataclass
class ReplayGuard:
    window: timedelta = timedelta(hours=24)
    max_bytes: int = 256 * 2**20
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC), repr=False)
    _buckets: dict[int, _Bucket] = field(default_factory=dict, repr=False)
    _pending: dict[int, int] = field(default_factory=dict, repr=False)
    """Ids not sealed yet: id digest -> place digest."""
    _pending_buckets: list[int] = field(default_factory=list, repr=False)
    """The bucket of each pending id, in the order they were added."""

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
        digests = [_id_digest(event_id) for event_id, _, _ in events]
        sealed = self._sealed_places(digests)
        pending, pending_buckets, width = self._pending, self._pending_buckets, self._width
        replays = []
        for (_, position, ts), digest, place in zip(events, digests, sealed, strict=True):
            if place < 0:
                place = pending.get(digest, -1)
            if place >= 0:
                replays.append(place != _place_digest(position))
                continue
            pending[digest] = _place_digest(position)
            pending_buckets.append(int(ts.timestamp() // width))
            replays.append(False)
        if len(pending) >= SEAL_AT:
            self._seal()
        self._enforce_budget()
        return replays

    def nbytes(self) -> int:
        """Memory held for remembered ids, in bytes (the pending dict estimated)."""
        sealed = sum(int(b.ids.nbytes + b.places.nbytes) for b in self._buckets.values())
        pending = sys.getsizeof(self._pending) + 76 * len(self._pending) if self._pending else 0
        return sealed + pending

    def __len__(self) -> int:
        return sum(len(b.ids) for b in self._buckets.values()) + len(self._pending)

    def _seal(self) -> None:
        ids = np.fromiter(self._pending, dtype=np.uint64, count=len(self._pending))
        places = np.fromiter(self._pending.values(), dtype=np.uint32, count=len(self._pending))
        buckets = np.array(self._pending_buckets, dtype=np.int64)
        for key in np.unique(buckets).tolist():
            chosen = buckets == key
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = _Bucket()
            bucket.add(ids[chosen], places[chosen])
        self._pending, self._pending_buckets = {}, []

    def _sealed_places(self, digests: list[int]) -> list[int]:
        if not self._buckets:
            return [-1] * len(digests)
        wanted = np.fromiter(digests, dtype=np.uint64, count=len(digests))
        found = np.full(len(digests), -1, dtype=np.int64)
        for bucket in self._buckets.values():
            places = bucket.places_of(wanted)
            found = np.where(places >= 0, places, found)
        return found.tolist()

    def _forget_older_than(self, horizon: datetime) -> None:
        """Drop the buckets whose every id is older than ``horizon``."""
        last_expired = int(horizon.timestamp() // self._width) - 1
        for key in [k for k in self._buckets if k <= last_expired]:
            del self._buckets[key]
        if self._pending_buckets and min(self._pending_buckets) <= last_expired:
            kept = [
                (digest, place, key)
                for (digest, place), key in zip(self._pending.items(), self._pending_buckets, strict=True)
                if key > last_expired
            ]
            self._pending = {digest: place for digest, place, _ in kept}
            self._pending_buckets = [key for _, _, key in kept]

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


def is_stale(ts: datetime, arrival: datetime | None, max_skew: timedelta) -> bool:
    """Without an arrival time (a file replayed through ``vigil run``) nothing is stale."""
    return arrival is not None and abs(ts - arrival) > max_skew
