"""alerting.snapshot: a dispatcher restored from the state database carries on as if never stopped."""

from __future__ import annotations

from pathlib import Path

from alerting.dispatcher import Ack
from alerting.snapshot import SnapshotWriter, restore
from alerting.state import StateStore
from tests.clock import FakeClock
from tests.factories import finding
from tests.unit.alerting.test_dispatcher import CONFIG, Harness, drift


def saved_and_restored(h: Harness, path: Path) -> Harness:
    state = StateStore(path)
    with state.transaction():
        SnapshotWriter(state).save(h.dispatcher)
    state.close()
    again = Harness(h.clock)
    again.gate = h.gate
    assert restore(again.dispatcher, StateStore(path)) == len(h.dispatcher.groups)
    return again


def test_a_group_restored_inside_its_wait_notifies_once_on_time(clock: FakeClock, tmp_path: Path) -> None:
    h = Harness(clock)
    h.feed(drift(), drift())
    h.run(5)
    again = saved_and_restored(h, tmp_path / "state.sqlite")
    assert again.run(4) == []
    [first] = again.run(2)
    assert (first.kind, first.alerts[0].occurrences) == ("firing", 2)


def test_what_a_group_showed_and_its_acks_survive(clock: FakeClock, tmp_path: Path) -> None:
    h = Harness(clock)
    h.feed(drift(), finding(stage="policy", rule="export-needs-mfa", severity="high", principal_id="bob"))
    h.run(11)
    group_id = next(g for g, group in h.dispatcher.groups.items() if group.route.receiver == "pager")
    h.dispatcher.acknowledge(Ack(group_id, "dana", "cli", clock.wall()))
    again = saved_and_restored(h, tmp_path / "state.sqlite")
    for _ in range(5):
        again.feed(drift())
    sent = again.run(61)
    assert [
        (n.kind, n.alerts[0].occurrences, n.alerts[0].new_occurrences) for n in sent if n.receiver == "ml"
    ] == [
        ("update", 6, 5)  # counts carry on from what the last message showed: not a new thread
    ]
    [pager] = [n for n in sent if n.receiver == "pager"]
    assert pager.alerts[0].acked_by == "dana"


def test_groups_of_a_route_that_no_longer_exists_are_routed_again(clock: FakeClock, tmp_path: Path) -> None:
    h = Harness(clock)
    h.feed(drift())
    h.run(11)
    path = tmp_path / "state.sqlite"
    state = StateStore(path)
    with state.transaction():
        SnapshotWriter(state).save(h.dispatcher)
    changed = {**CONFIG, "route": {**CONFIG["route"], "group_by": ["model"]}}
    again = Harness(clock, changed)
    restore(again.dispatcher, StateStore(path))
    [group] = again.dispatcher.groups.values()
    assert group.labels == {"model": "fraud-v3"}
    assert [a.labels["model"] for a in group.members.values()] == ["fraud-v3"]


def _documents(state: StateStore) -> dict[str, dict[str, object]]:
    return {table: state.documents(table) for table in ("alerts", "groups", "dispatcher")}


def _fresh_save(h: Harness, path: Path) -> dict[str, dict[str, object]]:
    state = StateStore(path)
    with state.transaction():
        SnapshotWriter(state).save(h.dispatcher)
    return _documents(state)


def test_saving_after_every_step_keeps_what_a_full_save_would(clock: FakeClock, tmp_path: Path) -> None:
    """Only what was assigned since the last save is written: no change may slip through."""
    h = Harness(clock)
    state = StateStore(tmp_path / "kept.sqlite")
    writer = SnapshotWriter(state)
    steps = [
        lambda: h.feed(drift(), drift("churn-v1")),
        lambda: h.run(11),  # notified: groups remember what they showed
        lambda: h.feed(drift(), drift()),  # more occurrences of a live alert
        lambda: h.dispatcher.acknowledge(Ack(next(iter(h.dispatcher.groups)), "dana", "cli", clock.wall())),
        lambda: h.run(400),  # resolved, reported and dropped
        lambda: h.feed(drift("churn-v1")),  # a new instance of a resolved alert
    ]
    for number, step in enumerate(steps):
        step()
        with state.transaction():
            writer.save(h.dispatcher)
        assert _documents(state) == _fresh_save(h, tmp_path / f"full-{number}.sqlite"), number


def test_after_a_rolled_back_save_the_next_one_writes_what_it_held(clock: FakeClock, tmp_path: Path) -> None:
    h = Harness(clock)
    state = StateStore(tmp_path / "state.sqlite")
    writer = SnapshotWriter(state)
    h.feed(drift())
    with state.transaction():
        writer.save(h.dispatcher)
    h.feed(drift())  # a second occurrence, saved by a transaction that does not commit
    try:
        with state.transaction():
            writer.save(h.dispatcher)
            raise RuntimeError("the disk filled up")
    except RuntimeError:
        writer.forget()
    with state.transaction():
        writer.save(h.dispatcher)
    assert _documents(state) == _fresh_save(h, tmp_path / "full.sqlite")


def test_a_save_writes_what_changed_not_everything_live(clock: FakeClock, tmp_path: Path) -> None:
    """An alert storm holds thousands of live alerts; one more must not rewrite them all."""
    h = Harness(clock)
    state = StateStore(tmp_path / "state.sqlite")
    writer = SnapshotWriter(state)
    h.feed(*(drift(f"model-{n}") for n in range(2_000)))
    with state.transaction():
        writer.save(h.dispatcher)
    written: list[tuple[str, int]] = []
    put = state.put_documents
    state.put_documents = lambda table, changed, removed: (  # type: ignore[method-assign]
        written.append((table, len(changed))),
        put(table, changed, removed),
    )[1]
    h.feed(drift("model-2000"))
    with state.transaction():
        writer.save(h.dispatcher)
    assert sorted(written) == [("alerts", 1), ("dispatcher", 1), ("groups", 1)]
