"""Snapshots: a worker that takes over a partition resumes its baselines, and nothing
but an intact snapshot of this build, under the workers' key, is ever unpickled."""

from __future__ import annotations

import os
import pickle
import random
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from detectors.snapshots import (
    Checkpointer,
    ClickHouseSnapshots,
    Snapshot,
    SnapshotError,
    open_snapshot,
    snapshot_key,
    take,
)
from detectors.stage import DetectStage
from schemas.records import FindingRow
from sinks.clickhouse import connect, migrate
from tests.unit.detectors.events import inference

KEY = b"k" * 32


def traffic(n: int, seed: int, change: int) -> list:
    rng = random.Random(seed)
    return [
        inference(
            features={"amount": rng.gauss(130.0 if i >= change else 100.0, 10.0)},
            score=rng.random(),
            at=200 * i,  # 1,200 events span ~2.8 days: the seasonal profile judges by the change
        )
        for i in range(n)
    ]


def feed(stage: DetectStage, events: list, start: int, partition: int = 0) -> list[FindingRow]:
    found = []
    for offset, event in enumerate(events, start=start):
        found += stage.observe(event, topic="ai.inference", partition=partition, offset=offset)
    return found


def test_a_restored_partition_continues_exactly_like_the_original() -> None:
    events = traffic(1_200, seed=1, change=900)
    original = DetectStage()
    assert feed(original, events[:600], 0) == []
    snapshot = take(original.partition(0), scope="g", partition=0, key=KEY)
    assert snapshot.offsets == {"ai.inference": 599}
    successor = DetectStage()
    successor.adopt(0, open_snapshot(snapshot, KEY))
    later_original = feed(original, events[600:], 600)
    later_successor = feed(successor, events[600:], 600)
    assert [f.detector_or_rule for f in later_successor] == ["feature-drift"]
    assert later_successor == later_original


def test_without_a_snapshot_the_same_change_goes_unnoticed() -> None:
    # the contrast that makes the test above meaningful: a fresh worker would warm up on
    # the drifted data and take it for normal
    events = traffic(1_200, seed=1, change=900)
    assert feed(DetectStage(), events[900:], 900) == []


def test_replayed_events_after_a_restore_do_not_count_twice() -> None:
    events = traffic(700, seed=2, change=10**9)
    original = DetectStage()
    feed(original, events[:600], 0)
    successor = DetectStage()
    successor.adopt(0, open_snapshot(take(original.partition(0), scope="g", partition=0, key=KEY), KEY))
    feed(successor, events[500:600], 500)  # the consumer resumes at an older committed offset
    assert pickle.dumps(successor.partition(0)) == pickle.dumps(original.partition(0))


@pytest.fixture
def snapshot() -> Snapshot:
    stage = DetectStage()
    feed(stage, traffic(300, seed=3, change=10**9), 0)
    return take(stage.partition(0), scope="g", partition=0, key=KEY)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"state": b"x"}, "tag does not verify"),
        ({"partition": 1}, "tag does not verify"),
        ({"tag": "0" * 64}, "tag does not verify"),
        ({"river_version": "0.21.0"}, "snapshot from river 0.21.0, this worker runs 0.26.1"),
        ({"format_version": 99}, "snapshot format 99"),
    ],
)
def test_foreign_or_altered_snapshots_are_refused(snapshot: Snapshot, change: dict, reason: str) -> None:
    with pytest.raises(SnapshotError, match=reason):
        open_snapshot(replace(snapshot, **change), KEY)


def test_a_snapshot_under_another_key_is_refused(snapshot: Snapshot) -> None:
    with pytest.raises(SnapshotError, match="tag does not verify"):
        open_snapshot(snapshot, b"other-key")


class _Exploit:
    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, ("echo pwned",))


def test_even_a_correctly_tagged_pickle_may_only_hold_detector_state() -> None:
    evil = replace(
        take(DetectStage().partition(0), scope="g", partition=0, key=KEY), state=pickle.dumps(_Exploit())
    )
    tagged = take_raw(evil)
    with pytest.raises(SnapshotError, match=r"refers to posix\.system"):
        open_snapshot(tagged, KEY)


def take_raw(snapshot: Snapshot) -> Snapshot:
    import hashlib
    import hmac

    return replace(snapshot, tag=hmac.new(KEY, snapshot._signed_bytes(), hashlib.sha256).hexdigest())


def test_snapshot_key_is_generated_once_with_owner_only_access(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = snapshot_key(None, tmp_path)
    assert snapshot_key(None, tmp_path) == first
    assert len(first) == 64
    assert (tmp_path / "detector-snapshots.key").stat().st_mode & 0o777 == 0o600
    assert snapshot_key("configured-secret", tmp_path, shared_store=True) == b"configured-secret"
    assert "VIGIL_DETECTORS_SNAPSHOT_KEY is not set" not in caplog.text
    snapshot_key(None, tmp_path, shared_store=True)  # several workers, one generated key each
    assert "other workers of the group refuse them" in caplog.text


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ClickHouseSnapshots]:
    client = connect(f"chdb://{tmp_path / 'store'}")
    migrate(client)
    yield ClickHouseSnapshots(client)
    client.close()


def test_clickhouse_keeps_the_newest_snapshot_per_partition(store: ClickHouseSnapshots) -> None:
    stage = DetectStage()
    feed(stage, traffic(100, seed=4, change=10**9), 0, partition=0)
    feed(stage, traffic(100, seed=5, change=10**9), 0, partition=2)
    older = take(stage.partition(0), scope="g", partition=0, key=KEY)
    feed(stage, traffic(50, seed=6, change=10**9), 100, partition=0)
    newer = take(stage.partition(0), scope="g", partition=0, key=KEY)
    other_scope = take(stage.partition(2), scope="other-group", partition=2, key=KEY)
    store.save([older, take(stage.partition(2), scope="g", partition=2, key=KEY)])
    store.save([newer, other_scope])
    loaded = {s.partition: s for s in store.load("g", [0, 1, 2])}
    assert sorted(loaded) == [0, 2]
    assert loaded[0].offsets == {"ai.inference": 149}
    assert loaded[0].state == newer.state
    assert loaded[0].tag == newer.tag
    assert open_snapshot(loaded[0], KEY).keys == stage.partition(0).keys


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_checkpointer_restores_snapshots_saves_on_interval_and_on_release(store: ClickHouseSnapshots) -> None:
    clock = _Clock()
    first = DetectStage()
    cp = Checkpointer(first, store, scope="g", key=KEY, interval=30.0, clock=clock)
    cp.prepare([0])
    feed(first, traffic(400, seed=7, change=10**9), 0)
    cp.after_batch()
    assert cp.saved == 0  # interval not over yet
    clock.now = 31.0
    cp.after_batch()
    assert cp.saved == 1
    clock.now = 62.0
    cp.after_batch()
    assert cp.saved == 1  # no event since the last snapshot: nothing to write again

    taker = DetectStage()
    taken = Checkpointer(taker, store, scope="g", key=KEY, interval=30.0, clock=clock)
    taken.prepare([0, 1])
    assert taken.restored == 1
    assert taker.partition(0).keys == first.partition(0).keys
    assert taker.partitions == [0]

    feed(taker, traffic(10, seed=8, change=10**9), 400)
    taken.release([0])
    assert taker.partitions == []
    assert store.load("g", [0])[0].offsets == {"ai.inference": 409}


def test_a_refused_snapshot_means_a_warm_up_not_a_crash(
    store: ClickHouseSnapshots, caplog: pytest.LogCaptureFixture
) -> None:
    stage = DetectStage()
    feed(stage, traffic(300, seed=9, change=10**9), 0)
    store.save([take(stage.partition(0), scope="g", partition=0, key=b"old-key")])
    fresh = DetectStage()
    cp = Checkpointer(fresh, store, scope="g", key=KEY, interval=30.0)
    cp.prepare([0])
    assert (cp.restored, cp.refused) == (0, 1)
    assert fresh.partitions == []
    assert "partition 0 refused (snapshot tag does not verify" in caplog.text
