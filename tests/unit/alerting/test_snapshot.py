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
