"""Checkpoints of detector state, so a worker taking over a partition resumes its baselines.

Why periodic snapshots and not a changelog topic per key: a changelog writes a
message per key update, i.e. one or more per feature of every event, which would
multiply Kafka traffic several times over, and its recovery replays the whole
changelog. A snapshot instead pickles one partition's
state (``PartitionDetectors``) every ``snapshot_seconds`` after a stored batch, into
the ``detector_snapshots`` table (sinks/ddl/0005_detectors.sql) of the same
ClickHouse every worker already writes to, so any worker of the group can load it.

Consistency: a snapshot records, per topic, the highest offset its state includes.
After a restore, events at or below those offsets are replays (the consumer resumes
at the last *committed* offset, which may be older) and skip the detectors, so no
event is counted twice. Events consumed after the last snapshot by a worker that
then died are lost to the baselines (at most ``snapshot_seconds`` of traffic): a
gap delays a detection at worst, it cannot cause a false one.

Safety: state is pickled, and unpickling runs code. Each snapshot therefore carries
an HMAC-SHA256 tag under a key only workers hold (``VIGIL_DETECTORS_SNAPSHOT_KEY``,
or a key file generated in the data directory for a single embedded worker), is
refused if the tag does not verify, and is unpickled with an allow-list of the
classes detector state is made of. A snapshot from another river version or
snapshot format is refused too (river's pickles change between versions): the
partition then starts over with a warm-up, which is logged.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import logging
import pickle
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol

from detectors.stage import DetectStage, PartitionDetectors

log = logging.getLogger(__name__)

FORMAT_VERSION = 3
"""2: seasonal detectors and the byte-bounded feedback join (state of version 1 lacks both)."""
RIVER_VERSION = metadata.version("river")
KEY_FILE = "detector-snapshots.key"

_ALLOWED_PREFIXES = ("detectors.", "river.")
_ALLOWED = {
    ("builtins", name)
    for name in (
        "dict",
        "list",
        "set",
        "frozenset",
        "tuple",
        "float",
        "int",
        "str",
        "bytes",
        "bool",
        "object",
    )
} | {
    ("collections", "OrderedDict"),
    ("collections", "deque"),
    ("collections", "Counter"),
    ("collections", "defaultdict"),
    ("array", "array"),
    ("array", "_array_reconstructor"),
    ("copyreg", "_reconstructor"),
    ("datetime", "datetime"),
    ("datetime", "timezone"),
    ("datetime", "timedelta"),
    ("pydantic_core._pydantic_core", "TzInfo"),
    ("math", "inf"),
}


@dataclass(frozen=True)
class Snapshot:
    scope: str
    partition: int
    taken_at: datetime
    format_version: int
    river_version: str
    offsets: dict[str, int]
    keys: int
    state: bytes
    tag: str

    def _signed_bytes(self) -> bytes:
        header = f"{self.format_version}\x1f{self.river_version}\x1f{self.scope}\x1f{self.partition}\x1f"
        return header.encode() + self.state


class SnapshotError(ValueError):
    """A snapshot that must not be restored (tampered, foreign version, corrupt)."""


class _AllowListUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if module.startswith(_ALLOWED_PREFIXES) or (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise SnapshotError(f"snapshot refers to {module}.{name}, which detector state never holds")


def take(state: PartitionDetectors, *, scope: str, partition: int, key: bytes) -> Snapshot:
    blob = pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)
    unsigned = Snapshot(
        scope,
        partition,
        datetime.now(UTC),
        FORMAT_VERSION,
        RIVER_VERSION,
        dict(state.offsets),
        state.keys,
        blob,
        "",
    )
    tag = hmac.new(key, unsigned._signed_bytes(), hashlib.sha256).hexdigest()
    return Snapshot(**{**unsigned.__dict__, "tag": tag})


def open_snapshot(snapshot: Snapshot, key: bytes) -> PartitionDetectors:
    """The state in a snapshot, or ``SnapshotError`` saying why it is refused."""
    if snapshot.format_version != FORMAT_VERSION:
        raise SnapshotError(f"snapshot format {snapshot.format_version}, this worker reads {FORMAT_VERSION}")
    if snapshot.river_version != RIVER_VERSION:
        raise SnapshotError(f"snapshot from river {snapshot.river_version}, this worker runs {RIVER_VERSION}")
    expected = hmac.new(key, snapshot._signed_bytes(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, snapshot.tag):
        raise SnapshotError("snapshot tag does not verify (another key, or altered)")
    try:
        state = _AllowListUnpickler(io.BytesIO(snapshot.state)).load()
    except SnapshotError:
        raise
    except Exception as error:
        raise SnapshotError(f"snapshot does not unpickle: {type(error).__name__}: {error}") from None
    if not isinstance(state, PartitionDetectors):
        raise SnapshotError(f"snapshot holds a {type(state).__name__}, not detector state")
    return state


def snapshot_key(configured: str | None, data_dir: Path, *, shared_store: bool = False) -> bytes:
    """The configured key, else one generated once in the data directory (mode 0600).

    A generated key is this worker's alone: with a store shared by several workers
    (a ClickHouse server), the others cannot verify its snapshots, which is logged.
    """
    if configured:
        return configured.encode()
    if shared_store:
        log.warning(
            "VIGIL_DETECTORS_SNAPSHOT_KEY is not set: detector snapshots use a key generated in %s, "
            "so other workers of the group refuse them and warm up after a takeover",
            data_dir,
        )
    path = data_dir / KEY_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_hex(32))
    return path.read_text().strip().encode()


class SnapshotStore(Protocol):
    def save(self, snapshots: list[Snapshot]) -> None: ...

    def load(self, scope: str, partitions: Iterable[int]) -> list[Snapshot]: ...


class ClickHouseSnapshots:
    """``detector_snapshots``: the newest row per (scope, partition) wins."""

    COLUMNS = (
        "scope",
        "partition",
        "taken_at",
        "format_version",
        "river_version",
        "offsets",
        "keys",
        "state",
        "tag",
    )

    def __init__(self, client: Any) -> None:
        self.client = client

    def save(self, snapshots: list[Snapshot]) -> None:
        rows = [
            [
                s.scope,
                s.partition,
                s.taken_at,
                s.format_version,
                s.river_version,
                s.offsets,
                s.keys,
                base64.b64encode(s.state).decode(),
                s.tag,
            ]
            for s in snapshots
        ]
        if rows:
            self.client.insert("detector_snapshots", rows, column_names=list(self.COLUMNS))

    def load(self, scope: str, partitions: Iterable[int]) -> list[Snapshot]:
        wanted = sorted(set(partitions))
        if not wanted:
            return []
        result = self.client.query(
            "SELECT partition, argMax(taken_at, taken_at), argMax(format_version, taken_at), "
            "argMax(river_version, taken_at), argMax(offsets, taken_at), argMax(keys, taken_at), "
            "argMax(state, taken_at), argMax(tag, taken_at) FROM detector_snapshots "
            "WHERE scope = {scope:String} AND has({partitions:Array(Int32)}, partition) GROUP BY partition",
            parameters={"scope": scope, "partitions": wanted},
        )
        return [
            Snapshot(
                scope=scope,
                partition=int(row[0]),
                taken_at=row[1],
                format_version=int(row[2]),
                river_version=str(row[3]),
                offsets={str(k): int(v) for k, v in dict(row[4]).items()},
                keys=int(row[5]),
                state=base64.b64decode(row[6]),
                tag=str(row[7]),
            )
            for row in result.result_rows
        ]


class Checkpointer:
    """Restores partitions as they first appear, snapshots them every ``interval`` seconds.

    Every method runs on the thread that owns the pipeline (between batches), so
    state is never read while an event is being applied. ``release`` (partitions
    revoked) saves and drops at once: the next owner resumes from here.
    """

    def __init__(
        self,
        stage: DetectStage,
        store: SnapshotStore,
        *,
        scope: str,
        key: bytes,
        interval: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stage = stage
        self.store = store
        self.scope = scope
        self.key = key
        self.interval = interval
        self.clock = clock
        self._ready: set[int] = set()
        self._saved_offsets: dict[int, dict[str, int]] = {}
        """Offsets of each partition's last saved (or restored) snapshot: an unchanged partition
        is not written again."""
        self._last = clock()
        self.saved = 0
        self.restored = 0
        self.refused = 0

    def prepare(self, partitions: Iterable[int]) -> None:
        """Before a batch: load the snapshot of each partition not yet owned here."""
        fresh = sorted(set(partitions) - self._ready)
        if not fresh:
            return
        try:
            found = {s.partition: s for s in self.store.load(self.scope, fresh)}
        except Exception:
            log.exception("loading detector snapshots failed; partitions %s start with a warm-up", fresh)
            found = {}
        for number in fresh:
            self._ready.add(number)
            snapshot = found.get(number)
            if snapshot is None:
                continue
            try:
                state = open_snapshot(snapshot, self.key)
            except SnapshotError as error:
                self.refused += 1
                log.warning(
                    "detector snapshot of partition %d refused (%s): starting with a warm-up", number, error
                )
                continue
            self.stage.drop(number)
            self.stage.adopt(number, state)
            self._saved_offsets[number] = dict(state.offsets)
            self.restored += 1
            log.info(
                "restored detector state of partition %d: %d keys, offsets %s, taken %s",
                number,
                state.keys,
                snapshot.offsets,
                snapshot.taken_at,
            )

    def after_batch(self) -> None:
        """After a stored batch: when the interval has passed, snapshot every owned partition
        that applied events since its last snapshot (an idle partition is not written again)."""
        if self.interval <= 0 or self.clock() - self._last < self.interval:
            return
        self._last = self.clock()
        self.save([p for p in self.stage.partitions if self._changed(p)])

    def _changed(self, number: int) -> bool:
        return self.stage.partition(number).offsets != self._saved_offsets.get(number)

    def save(self, partitions: Iterable[int]) -> None:
        snapshots = [
            take(self.stage.partition(p), scope=self.scope, partition=p, key=self.key)
            for p in partitions
            if p in self.stage.partitions
        ]
        try:
            self.store.save(snapshots)
            self.saved += len(snapshots)
            for snapshot in snapshots:
                self._saved_offsets[snapshot.partition] = dict(snapshot.offsets)
        except Exception:
            log.exception("saving detector snapshots failed; retrying at the next interval")

    def release(self, partitions: Iterable[int]) -> None:
        """Partitions revoked: save their state now, then forget it."""
        numbers = sorted(set(partitions))
        self.save(numbers)
        for number in numbers:
            self.stage.drop(number)
            self._ready.discard(number)
            self._saved_offsets.pop(number, None)
