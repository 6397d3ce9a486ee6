"""Checkpoints of detector state, so a worker taking over a partition resumes its baselines.

Why periodic snapshots and not a changelog topic per key: a changelog writes a
message per key update, i.e. one or more per feature of every event, which would
multiply Kafka traffic several times over, and its recovery replays the whole
changelog. A snapshot instead saves, every ``snapshot_seconds`` after a stored batch,
what changed in a partition's state (``PartitionDetectors``) into the
``detector_state`` table (sinks/ddl/0008_detector_state.sql) of the same ClickHouse
every worker already writes to, so any worker of the group can load it.

**Units and increments.** A partition's state is saved in units: one per model (its
streams, feedback join, bias groups and supply chain), one per group of principals
(``access.GROUPS``) and the partition's own row (unit ``""``: the offsets the state
includes and the list of its units). A snapshot writes the units changed since the
previous one and the partition row, in one insert; each row carries the snapshot's
``generation`` (increasing per partition). A restore takes the newest partition row
and, for every unit it lists, the newest row at or below its generation: unchanged
units come from earlier snapshots, which is exact because they did not change since.

**Off the pipeline thread.** The pipeline thread only reads the changed units into
plain data (``detectors/state.py``: numbers, strings, arrays' bytes); encoding,
tagging and the insert run on a writer thread while the pipeline carries on. A
failed write puts its units back among the changed ones for the next snapshot.

**Format.** Each unit is JSON in the explicit, versioned format of
``detectors/state.py``: every detector class lists the fields of its state and a
version, so a snapshot does not depend on the Python objects' layout or on river,
and loading one runs no code. Rows carry an HMAC-SHA256 tag under a key only
workers hold (``VIGIL_DETECTORS_SNAPSHOT_KEY``, or a key file generated in the data
directory for a single embedded worker): a row whose tag does not verify, of another
``FORMAT_VERSION``, or that does not restore refuses the partition's snapshot, which
then starts over with a warm-up (logged). Pickled snapshots of earlier versions
(``detector_snapshots``) are refused the same way, with a message saying so.

Consistency: the partition row records, per topic, the highest offset its state
includes. After a restore, events at or below those offsets are replays (the
consumer resumes at the last *committed* offset, which may be older) and skip the
detectors, so no event is counted twice. Events consumed after the last snapshot by
a worker that then died are lost to the baselines (at most ``snapshot_seconds`` of
traffic): a gap delays a detection at worst, it cannot cause a false one.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import orjson

from detectors.monitors.access import GROUPS
from detectors.stage import DetectStage, PartitionDetectors
from detectors.state import StateError, dumps

log = logging.getLogger(__name__)

FORMAT_VERSION = 4
"""4: incremental units in the explicit per-detector format (1-3: whole-partition pickles)."""
KEY_FILE = "detector-snapshots.key"
PARTITION_UNIT = ""
MODEL_PREFIX = "m/"
ACCESS_PREFIX = "a/"


@dataclass(frozen=True)
class UnitRow:
    """One row of ``detector_state``: one unit of a partition's state at one generation."""

    scope: str
    partition: int
    unit: str
    generation: int
    taken_at: datetime
    format_version: int
    state: bytes
    tag: str

    def signed_bytes(self) -> bytes:
        fields = (self.format_version, self.scope, self.partition, self.unit, self.generation)
        return "".join(f"{field}\x1f" for field in fields).encode() + self.state

    def signed(self, key: bytes) -> UnitRow:
        return replace(self, tag=hmac.new(key, self.signed_bytes(), hashlib.sha256).hexdigest())

    def verifies(self, key: bytes) -> bool:
        expected = hmac.new(key, self.signed_bytes(), hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, self.tag)


class SnapshotError(ValueError):
    """A snapshot that must not be restored (tampered, foreign version, corrupt)."""


@dataclass
class Capture:
    """What the pipeline thread read of one partition: plain data, encoded later."""

    partition: int
    generation: int
    taken_at: datetime
    offsets: dict[str, int]
    units: list[str]
    changed: dict[str, Any]


def capture(
    state: PartitionDetectors,
    *,
    partition: int,
    generation: int,
    taken_at: datetime,
    every_unit: bool = False,
) -> Capture:
    """Read the units changed since the last capture (all of them with ``every_unit``) and mark
    them saved. Runs on the pipeline thread: it must be quick, so nothing is encoded here."""
    models = state.models
    changed_models = models if every_unit else state.changed & models
    access = state.access
    groups = set(range(GROUPS)) if every_unit else set(access.changed)
    changed: dict[str, Any] = {MODEL_PREFIX + m: state.export_model(m) for m in changed_models}
    for group, principals in access.export_groups(groups).items():
        changed[f"{ACCESS_PREFIX}{group}"] = principals
    state.changed.clear()
    units = sorted({MODEL_PREFIX + m for m in models} | {f"{ACCESS_PREFIX}{g}" for g in range(GROUPS)})
    return Capture(partition, generation, taken_at, dict(state.offsets), units, changed)


def encode(taken: Capture, *, scope: str, key: bytes) -> list[UnitRow]:
    """The rows of a capture, tagged: its changed units, then the partition row."""
    partition_state = {"offsets": taken.offsets, "units": taken.units}
    items = [*taken.changed.items(), (PARTITION_UNIT, partition_state)]
    return [
        UnitRow(
            scope,
            taken.partition,
            unit,
            taken.generation,
            taken.taken_at,
            FORMAT_VERSION,
            dumps(data),
            "",
        ).signed(key)
        for unit, data in items
    ]


def restore_partition(
    rows: Iterable[UnitRow], stage: DetectStage, key: bytes
) -> tuple[PartitionDetectors, int]:
    """The partition state the newest snapshot in ``rows`` describes, and its generation;
    ``SnapshotError`` saying why it is refused."""
    newest = {row.unit: row for row in rows}
    head = newest.get(PARTITION_UNIT)
    if head is None:
        raise SnapshotError("no partition row: the snapshot is incomplete")
    for row in newest.values():
        if row.format_version != FORMAT_VERSION:
            raise SnapshotError(f"snapshot format {row.format_version}, this worker reads {FORMAT_VERSION}")
        if not row.verifies(key):
            raise SnapshotError(f"unit {row.unit!r}: tag does not verify (another key, or altered)")
    try:
        partition_state = orjson.loads(head.state)
        offsets = {str(t): int(o) for t, o in partition_state["offsets"].items()}
        units = [str(u) for u in partition_state["units"]]
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as error:
        raise SnapshotError(f"partition row does not decode: {type(error).__name__}: {error}") from None
    state = PartitionDetectors(stage.config.limits)
    access_groups = []
    for unit in units:
        saved = newest.get(unit)
        if saved is None or saved.generation > head.generation:
            raise SnapshotError(f"unit {unit!r} of generation {head.generation} is missing")
        try:
            data = orjson.loads(saved.state)
            if unit.startswith(MODEL_PREFIX):
                model_id = unit[len(MODEL_PREFIX) :]
                state.import_model(model_id, data, stage.for_model(model_id))
            elif unit.startswith(ACCESS_PREFIX):
                access_groups.append(data)
        except (orjson.JSONDecodeError, StateError) as error:
            raise SnapshotError(f"unit {unit!r} does not restore: {error}") from None
    try:
        state.access.import_groups(access_groups)
    except StateError as error:
        raise SnapshotError(str(error)) from None
    state.offsets = offsets
    return state, head.generation


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
    def save(self, rows: list[UnitRow]) -> None:
        """Write the rows in one insert (a snapshot lands whole or not at all)."""

    def load(self, scope: str, partitions: Iterable[int]) -> list[UnitRow]:
        """The newest row per (partition, unit)."""

    def legacy(self, scope: str, partitions: Iterable[int]) -> list[int]:
        """Partitions with a snapshot in a format before the current one."""


class ClickHouseSnapshots:
    """``detector_state``: the newest row per (scope, partition, unit) wins."""

    COLUMNS = ("scope", "partition", "unit", "generation", "taken_at", "format_version", "state", "tag")

    def __init__(self, client: Any) -> None:
        self.client = client

    def save(self, rows: list[UnitRow]) -> None:
        if rows:
            self.client.insert(
                "detector_state",
                [
                    [
                        r.scope,
                        r.partition,
                        r.unit,
                        r.generation,
                        r.taken_at,
                        r.format_version,
                        r.state.decode(),  # JSON: valid UTF-8
                        r.tag,
                    ]
                    for r in rows
                ],
                column_names=list(self.COLUMNS),
            )

    def load(self, scope: str, partitions: Iterable[int]) -> list[UnitRow]:
        wanted = sorted(set(partitions))
        if not wanted:
            return []
        result = self.client.query(
            "SELECT partition, unit, max(generation), argMax(taken_at, generation), "
            "argMax(format_version, generation), argMax(state, generation), argMax(tag, generation) "
            "FROM detector_state WHERE scope = {scope:String} AND has({partitions:Array(Int32)}, partition) "
            "GROUP BY partition, unit",
            parameters={"scope": scope, "partitions": wanted},
        )
        return [
            UnitRow(
                scope,
                int(row[0]),
                str(row[1]),
                int(row[2]),
                row[3],
                int(row[4]),
                str(row[5]).encode(),
                str(row[6]),
            )
            for row in result.result_rows
        ]

    def legacy(self, scope: str, partitions: Iterable[int]) -> list[int]:
        wanted = sorted(set(partitions))
        if not wanted:
            return []
        result = self.client.query(
            "SELECT DISTINCT partition FROM detector_snapshots "
            "WHERE scope = {scope:String} AND has({partitions:Array(Int32)}, partition)",
            parameters={"scope": scope, "partitions": wanted},
        )
        return sorted(int(row[0]) for row in result.result_rows)


class Checkpointer:
    """Restores partitions as they first appear, snapshots what changed every ``interval`` seconds.

    ``prepare``, ``after_batch``, ``save`` and ``release`` run on the thread that owns
    the pipeline (between batches), so state is never read while an event is being
    applied; they only read the changed state into plain data, and a writer thread
    encodes and stores it. ``release`` (partitions revoked) waits for its write: the
    next owner resumes from there. ``close`` waits for the writes under way.
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
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.stage = stage
        self.store = store
        self.scope = scope
        self.key = key
        self.interval = interval
        self.clock = clock
        self.wall_clock = wall_clock
        self._ready: set[int] = set()
        self._generation: dict[int, int] = {}
        self._saved_offsets: dict[int, dict[str, int]] = {}
        """Offsets of each partition's last saved (or restored) snapshot: an unchanged partition
        is not written again."""
        self._last = clock()
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="detector-snapshots")
        self._writes: list[Future[None]] = []
        self._retry: dict[int, set[str]] = {}
        """Units of failed writes, changed again for the next snapshot (filled by the writer)."""
        self._retry_lock = threading.Lock()
        self.saved = 0
        self.restored = 0
        self.refused = 0

    def prepare(self, partitions: Iterable[int]) -> None:
        """Before a batch: load the snapshot of each partition not yet owned here."""
        fresh = sorted(set(partitions) - self._ready)
        if not fresh:
            return
        self.wait()
        try:
            rows = self.store.load(self.scope, fresh)
        except Exception:
            log.exception("loading detector snapshots failed; partitions %s start with a warm-up", fresh)
            rows = []
        by_partition: dict[int, list[UnitRow]] = {}
        for row in rows:
            by_partition.setdefault(row.partition, []).append(row)
        for number in fresh:
            self._ready.add(number)
            found = by_partition.get(number)
            if not found:
                self._refuse_legacy(number)
                continue
            # New rows must outrank every row there, even of a refused snapshot.
            self._generation[number] = max(row.generation for row in found)
            try:
                state, generation = restore_partition(found, self.stage, self.key)
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
                "restored detector state of partition %d: %d keys, offsets %s, generation %d",
                number,
                state.keys,
                state.offsets,
                generation,
            )

    def _refuse_legacy(self, number: int) -> None:
        try:
            legacy = number in self.store.legacy(self.scope, [number])
        except Exception:
            log.exception("looking for snapshots of an earlier format failed")
            return
        if legacy:
            self.refused += 1
            log.warning(
                "detector snapshot of partition %d is a pickle of an earlier Vigil version (format 3 or "
                "before), which this version does not load: starting with a warm-up; the next snapshot "
                "is written in format %d",
                number,
                FORMAT_VERSION,
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

    def save(self, partitions: Iterable[int]) -> Future[None] | None:
        """Read what changed in these partitions; the writer thread encodes and stores it."""
        taken_at = datetime.fromtimestamp(self.wall_clock(), UTC)
        captures = []
        for number in sorted(partitions):
            if number not in self.stage.partitions:
                continue
            state = self.stage.partition(number)
            with self._retry_lock:
                failed = self._retry.pop(number, set())
            for unit in failed:
                if unit.startswith(MODEL_PREFIX):
                    state.changed.add(unit[len(MODEL_PREFIX) :])
                elif unit.startswith(ACCESS_PREFIX):
                    state.access.changed.add(int(unit[len(ACCESS_PREFIX) :]))
            # Never below the wall clock in ms: rows outrank older ones even when the load failed.
            generation = max(self._generation.get(number, 0) + 1, int(taken_at.timestamp() * 1000))
            self._generation[number] = generation
            first = number not in self._saved_offsets
            captures.append(
                capture(state, partition=number, generation=generation, taken_at=taken_at, every_unit=first)
            )
            self._saved_offsets[number] = dict(state.offsets)
        if not captures:
            return None
        future = self._writer.submit(self._write, captures)
        self._writes = [w for w in self._writes if not w.done()] + [future]
        return future

    def _write(self, captures: list[Capture]) -> None:
        try:
            rows = [row for taken in captures for row in encode(taken, scope=self.scope, key=self.key)]
            self.store.save(rows)
            self.saved += len(captures)
        except Exception:
            log.exception("saving detector snapshots failed; retrying at the next interval")
            with self._retry_lock:
                for taken in captures:
                    self._retry.setdefault(taken.partition, set()).update(taken.changed)

    def wait(self) -> None:
        """Until every write under way has finished."""
        for write in self._writes:
            write.result()
        self._writes = []

    def release(self, partitions: Iterable[int]) -> None:
        """Partitions revoked: save their state now, then forget it."""
        numbers = sorted(set(partitions))
        self.save(numbers)
        self.wait()
        for number in numbers:
            self.stage.drop(number)
            self._ready.discard(number)
            self._saved_offsets.pop(number, None)
            self._generation.pop(number, None)
            with self._retry_lock:
                self._retry.pop(number, None)

    def close(self) -> None:
        self.wait()
        self._writer.shutdown(wait=True)
