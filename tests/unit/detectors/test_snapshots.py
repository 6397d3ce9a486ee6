"""Snapshots: a worker that takes over a partition resumes its baselines, exactly; only what
changed is written again; and nothing but an intact snapshot of this format, under the
workers' key, is ever restored."""

from __future__ import annotations

import json
import pickle
import random
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from detectors.monitors.access import group_of
from detectors.snapshots import (
    Checkpointer,
    ClickHouseSnapshots,
    SnapshotError,
    UnitRow,
    capture,
    encode,
    restore_partition,
    snapshot_key,
)
from detectors.stage import DetectStage
from detectors.state import dumps
from schemas.events import Event
from schemas.records import FindingRow
from sinks.clickhouse import connect, migrate
from tests.unit.detectors.events import T0, access, feedback, inference, training

KEY = b"k" * 32
TAKEN = datetime(2026, 3, 5, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[3]


def traffic(n: int, seed: int, change: int, models: int = 1) -> list[Event]:
    """Inference with labels, segments and tokens, their feedback, training and access
    events: every monitor holds state."""
    rng = random.Random(seed)
    events: list[Event] = []
    for i in range(n):
        model = f"model-{i % models}"
        request = f"req-{seed}-{i}"
        events.append(
            inference(
                model_id=model,
                features={"amount": rng.gauss(130.0 if i >= change else 100.0, 10.0), "country": "FR"},
                score=rng.random(),
                label=rng.choice(["0", "1"]),
                segment={"region": rng.choice(["eu", "us"])},
                tokens={"prompt": rng.randint(50, 60), "completion": rng.randint(10, 20)},
                request_id=request,
                at=200 * i,  # 1,200 events span ~2.8 days: the seasonal profile judges by the change
            )
        )
        if i % 3 == 0:
            events.append(feedback(request, rng.choice(["0", "1"]), model_id=model, at=200 * i + 60))
        if i % 7 == 0:
            events.append(access(principal=f"user-{i % 13}", ts=T0.replace(hour=(i // 10) % 24)))
        if i % 250 == 0:
            events.append(training("train", model_id=model, at=200 * i))
    return events


def feed(stage: DetectStage, events: list[Event], start: int, partition: int = 0) -> list[FindingRow]:
    found = []
    for offset, event in enumerate(events, start=start):
        found += stage.observe(event, topic="ai.events", partition=partition, offset=offset)
    return found


def decisions(findings: list[FindingRow]) -> list[tuple[str, str, str, str]]:
    """What a reader of ``findings`` sees (ids aside, which differ per process)."""
    return [(f.model_id, f.detector_or_rule, f.message, f.details) for f in findings]


def snapshot_rows(stage: DetectStage, partition: int = 0, generation: int = 1) -> list[UnitRow]:
    taken = capture(
        stage.partition(partition),
        partition=partition,
        generation=generation,
        taken_at=TAKEN,
        every_unit=True,
    )
    return encode(taken, scope="g", key=KEY)


def test_a_restored_partition_continues_exactly_like_the_original() -> None:
    events = traffic(1_200, seed=1, change=900)
    original = DetectStage()
    assert [f.detector_or_rule for f in feed(original, events[:700], 0)] == []
    successor = DetectStage()
    state, generation = restore_partition(snapshot_rows(original), successor, KEY)
    assert (generation, state.offsets) == (1, {"ai.events": 699})
    successor.adopt(0, state)
    later_original = feed(original, events[700:], 700)
    later_successor = feed(successor, events[700:], 700)
    assert "feature-drift" in [f.detector_or_rule for f in later_successor]
    assert later_successor == later_original


def test_a_restore_in_a_new_process_decides_the_same_on_the_next_values(tmp_path: Path) -> None:
    events = traffic(1_200, seed=1, change=900)
    original = DetectStage()
    feed(original, events[:700], 0)
    saved = tmp_path / "rows.json"
    saved.write_text(
        json.dumps([[r.unit, r.generation, r.state.decode(), r.tag] for r in snapshot_rows(original)])
    )
    script = f"""
import json, sys
from datetime import datetime, UTC
from detectors.snapshots import UnitRow, restore_partition
from detectors.stage import DetectStage
from tests.unit.detectors.test_snapshots import KEY, decisions, feed, traffic
saved = json.load(open({str(saved)!r}))
rows = [UnitRow("g", 0, u, g, datetime.now(UTC), 4, s.encode(), t) for u, g, s, t in saved]
stage = DetectStage()
stage.adopt(0, restore_partition(rows, stage, KEY)[0])
print(json.dumps(decisions(feed(stage, traffic(1_200, seed=1, change=900)[700:], 700))))
"""
    run = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert run.returncode == 0, run.stderr
    expected = decisions(feed(original, events[700:], 700))
    assert expected
    assert [tuple(d) for d in json.loads(run.stdout)] == expected


def test_without_a_snapshot_the_same_change_goes_unnoticed() -> None:
    # the contrast that makes the tests above meaningful: a fresh worker would warm up on
    # the drifted data and take it for normal
    events = traffic(1_200, seed=1, change=900)
    assert not [f for f in feed(DetectStage(), events[900:], 900) if "above its usual level for" in f.message]


def test_replayed_events_after_a_restore_do_not_count_twice() -> None:
    events = traffic(700, seed=2, change=10**9)
    original = DetectStage()
    feed(original, events[:600], 0)
    successor = DetectStage()
    successor.adopt(0, restore_partition(snapshot_rows(original), successor, KEY)[0])
    feed(successor, events[500:600], 500)  # the consumer resumes at an older committed offset
    assert [r.state for r in snapshot_rows(successor)] == [r.state for r in snapshot_rows(original)]


def test_only_the_models_that_changed_are_written_again() -> None:
    stage = DetectStage()
    feed(stage, traffic(300, seed=3, change=10**9, models=4), 0)
    first = capture(stage.partition(0), partition=0, generation=1, taken_at=TAKEN, every_unit=True)
    feed(stage, [inference(model_id="model-2", features={"amount": 100.0}, at=70_000)], 400)
    second = capture(stage.partition(0), partition=0, generation=2, taken_at=TAKEN)
    assert {u for u in first.changed if u.startswith("m/")} == {f"m/model-{k}" for k in range(4)}
    assert set(second.changed) == {"m/model-2"}
    # the newest row per unit: model-2 from the second snapshot, the others from the first
    rows = {r.unit: r for r in [*encode(first, scope="g", key=KEY), *encode(second, scope="g", key=KEY)]}
    successor = DetectStage()
    state, generation = restore_partition(rows.values(), successor, KEY)
    successor.adopt(0, state)
    assert generation == 2
    assert [r.state for r in snapshot_rows(successor)] == [r.state for r in snapshot_rows(stage)]


def test_numeric_detector_state_stays_within_2_kb_per_model_and_feature() -> None:
    stage = DetectStage()
    feed(stage, traffic(1_200, seed=4, change=10**9), 0)
    model = orjson.loads(dumps(stage.partition(0).export_model("model-0")))
    assert len(orjson.dumps(model["streams"]["numeric"]["amount"])) <= 2_048


@pytest.fixture
def rows() -> list[UnitRow]:
    stage = DetectStage()
    feed(stage, traffic(300, seed=3, change=10**9), 0)
    return snapshot_rows(stage)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"state": b"{}"}, "tag does not verify"),
        ({"partition": 1}, "tag does not verify"),
        ({"generation": 7}, "tag does not verify"),
        ({"tag": "0" * 64}, "tag does not verify"),
        ({"format_version": 99}, "snapshot format 99, this worker reads 4"),
    ],
)
def test_foreign_or_altered_snapshots_are_refused(rows: list[UnitRow], change: dict, reason: str) -> None:
    altered = [replace(r, **change) if r.unit.startswith("m/") else r for r in rows]
    with pytest.raises(SnapshotError, match=reason):
        restore_partition(altered, DetectStage(), KEY)


def test_a_snapshot_under_another_key_is_refused(rows: list[UnitRow]) -> None:
    with pytest.raises(SnapshotError, match="tag does not verify"):
        restore_partition(rows, DetectStage(), b"other-key")


def test_a_detector_of_another_state_version_is_refused_even_when_correctly_tagged(
    rows: list[UnitRow],
) -> None:
    model = next(r for r in rows if r.unit == "m/model-0")
    data = orjson.loads(model.state)
    data["streams"]["numeric"]["amount"][1] = 99
    forged = replace(model, state=orjson.dumps(data)).signed(KEY)
    with pytest.raises(SnapshotError, match="seasonal-cusum state of version 99; this version reads 1, 2"):
        restore_partition([forged if r is model else r for r in rows], DetectStage(), KEY)


def test_a_snapshot_missing_a_unit_is_refused(rows: list[UnitRow]) -> None:
    with pytest.raises(SnapshotError, match="unit 'm/model-0' of generation 1 is missing"):
        restore_partition([r for r in rows if r.unit != "m/model-0"], DetectStage(), KEY)


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


def test_clickhouse_returns_the_newest_row_per_unit(store: ClickHouseSnapshots) -> None:
    stage = DetectStage()
    feed(stage, traffic(100, seed=4, change=10**9, models=2), 0, partition=0)
    feed(stage, traffic(100, seed=5, change=10**9), 0, partition=2)
    store.save([*snapshot_rows(stage, 0, generation=1), *snapshot_rows(stage, 2, generation=1)])
    feed(stage, traffic(50, seed=6, change=10**9), 100, partition=0)
    newer = snapshot_rows(stage, 0, generation=2)
    store.save(newer)
    store.save([replace(r, scope="other-group") for r in snapshot_rows(stage, 2, generation=5)])
    loaded = store.load("g", [0, 1, 2])
    assert {r.partition for r in loaded} == {0, 2}
    assert {(r.unit, r.generation, r.state, r.tag) for r in loaded if r.partition == 0} == {
        (r.unit, r.generation, r.state, r.tag) for r in newer
    }
    assert max(r.generation for r in loaded if r.partition == 2) == 1
    assert (
        restore_partition([r for r in loaded if r.partition == 0], stage, KEY)[0].keys
        == stage.partition(0).keys
    )


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def checkpointer(stage: DetectStage, store: object, clock: _Clock, key: bytes = KEY) -> Checkpointer:
    return Checkpointer(
        stage,
        store,  # type: ignore[arg-type]
        scope="g",
        key=key,
        interval=30.0,
        clock=clock,
        wall_clock=lambda: TAKEN.timestamp() + clock.now,
    )


def test_checkpointer_restores_snapshots_saves_on_interval_and_on_release(store: ClickHouseSnapshots) -> None:
    clock = _Clock()
    first = DetectStage()
    cp = checkpointer(first, store, clock)
    cp.prepare([0])
    feed(first, traffic(400, seed=7, change=10**9, models=3), 0)
    cp.after_batch()
    cp.wait()
    assert cp.saved == 0  # interval not over yet
    clock.now = 31.0
    cp.after_batch()
    cp.wait()
    assert cp.saved == 1
    clock.now = 62.0
    cp.after_batch()
    cp.wait()
    assert cp.saved == 1  # no event since the last snapshot: nothing to write again

    taker = DetectStage()
    taken = checkpointer(taker, store, clock)
    taken.prepare([0, 1])
    assert taken.restored == 1
    assert taker.partition(0).keys == first.partition(0).keys
    assert taker.partitions == [0]

    feed(taker, traffic(10, seed=8, change=10**9), 10_000)
    taken.release([0])
    assert taker.partitions == []
    newest = {r.unit: r for r in store.load("g", [0])}
    assert orjson.loads(newest[""].state)["offsets"] == {"ai.events": 10_000 + len(traffic(10, 8, 10**9)) - 1}
    written = {u for u, r in newest.items() if r.generation == newest[""].generation}
    assert written == {"", "m/model-0"} | {f"a/{group_of(f'user-{i}')}" for i in (0, 7)}
    cp.close()
    taken.close()


class _FailingOnce:
    def __init__(self, store: ClickHouseSnapshots) -> None:
        self.store = store
        self.failures = 1

    def save(self, rows: list[UnitRow]) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("store unavailable")
        self.store.save(rows)

    def load(self, scope: str, partitions: list[int]) -> list[UnitRow]:
        return self.store.load(scope, partitions)

    def legacy(self, scope: str, partitions: list[int]) -> list[int]:
        return self.store.legacy(scope, partitions)


def test_units_of_a_failed_write_are_written_with_the_next_snapshot(store: ClickHouseSnapshots) -> None:
    clock = _Clock()
    stage = DetectStage()
    cp = checkpointer(stage, _FailingOnce(store), clock)
    cp.prepare([0])
    feed(stage, traffic(200, seed=9, change=10**9, models=2), 0)
    clock.now = 31.0
    cp.after_batch()
    cp.wait()
    assert (cp.saved, store.load("g", [0])) == (0, [])
    feed(stage, [inference(model_id="model-1", features={"amount": 1.0}, at=50_000)], 500)
    clock.now = 62.0
    cp.after_batch()
    cp.wait()
    successor = DetectStage()
    state, _ = restore_partition(store.load("g", [0]), successor, KEY)
    assert state.models == {"model-0", "model-1"}
    assert state.offsets == {"ai.events": 500}
    cp.close()


def test_a_refused_snapshot_means_a_warm_up_not_a_crash(
    store: ClickHouseSnapshots, caplog: pytest.LogCaptureFixture
) -> None:
    clock = _Clock()
    stage = DetectStage()
    feed(stage, traffic(300, seed=9, change=10**9), 0)
    store.save(
        encode(capture(stage.partition(0), partition=0, generation=5, taken_at=TAKEN), scope="g", key=b"old")
    )
    fresh = DetectStage()
    cp = checkpointer(fresh, store, clock)
    cp.prepare([0])
    assert (cp.restored, cp.refused) == (0, 1)
    assert fresh.partitions == []
    assert "detector snapshot of partition 0 refused" in caplog.text
    assert "tag does not verify" in caplog.text
    # what this worker writes next outranks the refused snapshot
    events = traffic(10, seed=10, change=10**9)
    feed(fresh, events, 0)
    cp.release([0])
    assert restore_partition(store.load("g", [0]), DetectStage(), KEY)[0].offsets == {
        "ai.events": len(events) - 1
    }
    cp.close()


LEGACY_COLUMNS = [
    "scope",
    "partition",
    "taken_at",
    "format_version",
    "river_version",
    "offsets",
    "keys",
    "state",
    "tag",
]


def test_a_pickled_snapshot_of_an_earlier_version_is_refused_with_a_clear_message(
    store: ClickHouseSnapshots, caplog: pytest.LogCaptureFixture
) -> None:
    store.client.insert(
        "detector_snapshots",
        [["g", 0, TAKEN, 3, "0.26.1", {"ai.events": 10}, 4, pickle.dumps({"old": "state"}).hex(), "tag"]],
        column_names=LEGACY_COLUMNS,
    )
    stage = DetectStage()
    cp = checkpointer(stage, store, _Clock())
    cp.prepare([0, 1])
    assert (cp.restored, cp.refused) == (0, 1)
    assert "detector snapshot of partition 0 is a pickle of an earlier Vigil version" in caplog.text
    assert "partition 1" not in caplog.text
    cp.close()
