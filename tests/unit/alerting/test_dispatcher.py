"""alerting.dispatcher: grouping, timers, silences, inhibition, acknowledgement, resolution."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from alerting import AlertGate, Dispatcher
from alerting.config import parse_config
from alerting.dispatcher import Ack
from alerting.matchers import parse_matcher
from alerting.notifications import Notification
from alerting.silences import new_silence
from tests.clock import FakeClock
from tests.factories import finding

CONFIG: dict[str, Any] = {
    "global": {"resolve_timeout": "5m"},
    "receivers": [{"name": "ml"}, {"name": "pager"}],
    "route": {
        "receiver": "ml",
        "group_by": ["stage", "rule", "model"],
        "group_wait": "10s",
        "group_interval": "1m",
        "repeat_interval": "1h",
        "routes": [{"matchers": ['severity=~"high|critical"'], "receiver": "pager"}],
    },
    "inhibit_rules": [
        {
            "name": "quarantine-hides-drift",
            "source_matchers": ["rule=model-quarantined"],
            "target_matchers": ["stage=detector"],
            "equal": ["model"],
        }
    ],
}


class Harness:
    def __init__(self, clock: FakeClock, config: dict[str, Any] = CONFIG) -> None:
        self.clock = clock
        parsed = parse_config(config)
        self.gate = AlertGate(
            resolve_timeout=parsed.global_.resolve_timeout, clock=self.clock, wall_clock=self.clock.wall
        )
        self.dispatcher = Dispatcher(parsed, self.clock, self.clock.wall)
        self.sent: list[Notification] = []

    def feed(self, *findings: Any) -> None:
        for row in self.gate.admit(findings):
            self.dispatcher.ingest(row)

    def run(self, seconds: float, step: float = 1.0) -> list[Notification]:
        """Advance time, ticking like the manager does; return what was sent meanwhile."""
        before = len(self.sent)
        end = self.clock.now + seconds
        while self.clock.now < end:
            self.clock.advance(min(step, end - self.clock.now))
            self.sent.extend(self.dispatcher.tick().notifications)
        return self.sent[before:]


def drift(model: str = "fraud-v3") -> Any:
    return finding(stage="detector", rule="adwin-mean-shift", severity="medium", model_id=model)


@pytest.fixture
def h(clock: FakeClock) -> Harness:
    return Harness(clock)


def test_a_new_group_waits_group_wait_then_notifies_once(h: Harness) -> None:
    h.feed(drift())
    assert h.run(9) == []
    [first] = h.run(2)
    assert first.kind == "firing"
    assert first.receiver == "ml"
    assert first.alerts[0].occurrences == 1


def test_repeats_fold_into_one_update_per_group_interval(h: Harness) -> None:
    h.feed(drift())
    h.run(11)
    for _ in range(30):
        h.feed(drift())
        h.run(1)
    [update] = h.run(60)
    assert update.kind == "update"
    assert update.alerts[0].occurrences == 31
    assert update.alerts[0].new_occurrences == 30
    assert update.folded() == [
        "30 more adwin-mean-shift findings on fraud-v3 in the last 1 min (31 in total)"
    ]
    assert h.run(120) == []  # nothing new: nothing sent


def test_a_new_alert_in_the_group_is_a_change(clock: FakeClock) -> None:
    config = {**CONFIG, "route": {**CONFIG["route"], "group_by": ["stage", "model"]}}
    h = Harness(clock, config)
    h.feed(drift())
    h.run(11)
    h.feed(finding(stage="detector", rule="psi-shift", severity="medium", model_id="fraud-v3"))
    [changed] = h.run(60)
    assert changed.kind == "changed"
    assert [a.joined for a in changed.alerts] == [False, True]


def test_severity_routes_to_different_receivers(h: Harness) -> None:
    h.feed(drift(), finding(rule="export-needs-mfa", severity="high"))
    sent = h.run(11)
    assert sorted(n.receiver for n in sent) == ["ml", "pager"]


def test_quiet_alerts_resolve_and_the_group_closes(h: Harness) -> None:
    h.feed(drift())
    h.run(11)
    sent = h.run(5 * 60 + 61)
    assert [n.kind for n in sent] == ["resolved"]
    assert sent[0].alerts[0].state == "resolved"
    assert h.dispatcher.groups == {}
    assert h.dispatcher.alerts == {}


def test_an_alert_that_resolves_before_anyone_heard_of_it_sends_nothing(clock: FakeClock) -> None:
    h = Harness(
        clock,
        {**CONFIG, "global": {"resolve_timeout": "5s"}, "route": {**CONFIG["route"], "group_wait": "1m"}},
    )
    h.feed(drift())
    assert h.run(120) == []


def test_silenced_alerts_are_tracked_but_do_not_notify(h: Harness) -> None:
    silence = new_silence(
        [parse_matcher("model=fraud-v3")], timedelta(hours=2), "retraining", "dana", h.clock.wall()
    )
    h.dispatcher.set_silences([silence])
    h.feed(drift(), drift("credit-v2"))
    sent = h.run(11)
    assert [n.group_labels["model"] for n in sent] == ["credit-v2"]
    [silenced] = [a for a in h.dispatcher.alerts.values() if a.labels["model"] == "fraud-v3"]
    assert (silenced.state, silenced.suppressed_by) == ("silenced", silence.silence_id)


def test_a_silence_that_ends_lets_the_still_firing_alert_notify(h: Harness) -> None:
    silence = new_silence(
        [parse_matcher("model=fraud-v3")], timedelta(seconds=30), "deploy", "dana", h.clock.wall()
    )
    h.dispatcher.set_silences([silence])
    h.feed(drift())
    assert h.run(20) == []
    h.feed(drift())
    sent = h.run(60)
    assert [n.kind for n in sent] == ["firing"]


def test_quarantine_inhibits_that_models_drift_only(h: Harness) -> None:
    h.feed(finding(stage="policy", rule="model-quarantined", severity="medium", model_id="fraud-v3"))
    h.feed(drift("fraud-v3"), drift("credit-v2"))
    sent = h.run(11)
    rules = sorted((n.group_labels["rule"], n.group_labels["model"]) for n in sent)
    assert rules == [("adwin-mean-shift", "credit-v2"), ("model-quarantined", "fraud-v3")]
    [held] = [
        a
        for a in h.dispatcher.alerts.values()
        if a.labels.get("model") == "fraud-v3" and a.labels["stage"] == "detector"
    ]
    assert (held.state, held.suppressed_by) == ("inhibited", "inhibit:quarantine-hides-drift")


def test_acknowledging_a_group_shows_promptly_and_stops_reminders(h: Harness) -> None:
    h.feed(drift())
    [first] = h.run(11)
    covered = h.dispatcher.acknowledge(Ack(first.group_id, "U123", "slack", h.clock.wall()))
    assert covered == [first.alerts[0].alert_id]
    [update] = h.run(1)
    assert update.kind == "update"
    assert update.acked_by == "U123"
    h.feed(drift())  # keep it firing past the repeat interval
    for _ in range(70):
        h.run(60)
        h.feed(drift())
    assert "repeat" not in [n.kind for n in h.sent]


BY_MODEL = {**CONFIG, "route": {**CONFIG["route"], "group_by": ["stage", "model"]}}


@pytest.mark.parametrize("producer_offset", [timedelta(minutes=2), timedelta(minutes=-2)])
def test_an_ack_covers_what_was_admitted_whatever_the_producers_clock(
    clock: FakeClock, producer_offset: timedelta
) -> None:
    h = Harness(clock)
    h.feed(
        finding(
            stage="detector", rule="adwin-mean-shift", severity="medium", ts=clock.wall() + producer_offset
        )
    )
    [first] = h.run(11)
    covered = h.dispatcher.acknowledge(Ack(first.group_id, "U123", "slack", clock.wall()))
    assert covered == [first.alerts[0].alert_id]
    for _ in range(70):
        h.run(60)
        h.feed(drift())
    assert "repeat" not in [n.kind for n in h.sent]


def test_an_alert_admitted_after_the_ack_notifies_again_though_its_events_are_older(clock: FakeClock) -> None:
    """A lagging consumer admits a finding of an old event after the group was acked."""
    h = Harness(clock, BY_MODEL)
    h.feed(drift())
    [first] = h.run(11)
    h.dispatcher.acknowledge(Ack(first.group_id, "U123", "slack", clock.wall()))
    h.run(60)
    old_event = clock.wall() - timedelta(minutes=10)
    h.feed(finding(stage="detector", rule="psi-shift", severity="medium", ts=old_event))
    [changed] = h.run(60)
    assert changed.kind == "changed"
    joined = next(a for a in changed.alerts if a.joined)
    assert (joined.state, joined.acked_by) == ("firing", "")


def test_an_alert_admitted_before_the_ack_but_seen_after_it_is_covered(clock: FakeClock) -> None:
    h = Harness(clock, BY_MODEL)
    h.feed(drift())
    [first] = h.run(11)
    [late] = h.gate.admit([finding(stage="detector", rule="psi-shift", severity="medium")])
    clock.advance(5)
    h.dispatcher.acknowledge(Ack(first.group_id, "U123", "slack", clock.wall()))
    h.dispatcher.ingest(late)  # admitted 5 s before the ack, delivered after it
    acked = {a.alert_id: a.acked_by for a in h.dispatcher.alerts.values()}
    assert acked == {first.alerts[0].alert_id: "U123", late.alert_id: "U123"}


def test_unacknowledged_firing_groups_are_reminded(h: Harness) -> None:
    h.feed(drift())
    h.run(11)
    for _ in range(62):
        h.feed(drift())
        h.run(60)
    kinds = [n.kind for n in h.sent]
    assert kinds.count("repeat") == 1


def test_flushing_sends_what_waits_regardless_of_timers(h: Harness) -> None:
    h.feed(drift())
    result = h.dispatcher.tick(force=True)
    assert [n.kind for n in result.notifications] == ["firing"]


def test_every_state_change_is_recorded(h: Harness) -> None:
    h.feed(drift())
    h.run(11)
    h.run(6 * 60)
    states = [r.state for r in h.dispatcher.tick().states]
    assert states == []  # drained by the ticks above
    h.feed(drift())
    recorded = h.dispatcher.tick().states
    assert recorded[0].state == "firing"
    assert "findings_unique" in recorded[0].evidence_query


def test_reconfiguring_reroutes_live_alerts_and_keeps_unchanged_groups(h: Harness) -> None:
    h.feed(drift())
    [first] = h.run(11)
    h.dispatcher.reconfigure(parse_config({**CONFIG, "route": {**CONFIG["route"], "group_interval": "2m"}}))
    assert first.group_id in h.dispatcher.groups  # same route and labels: the thread goes on
    assert h.dispatcher.groups[first.group_id].notified
    moved = {**CONFIG, "route": {**CONFIG["route"], "receiver": "pager", "routes": []}}
    h.dispatcher.reconfigure(parse_config(moved))
    [group] = h.dispatcher.groups.values()
    assert group.route.receiver == "pager"
    assert not group.notified
    assert [n.receiver for n in h.run(11)] == ["pager"]


def test_a_critical_alert_skips_the_group_wait_and_the_group_interval(clock: FakeClock) -> None:
    config = {**CONFIG, "route": {**CONFIG["route"], "group_by": ["stage", "model"], "routes": []}}
    h = Harness(clock, config)
    h.feed(finding(stage="detector", rule="model-stolen", severity="critical", model_id="fraud-v3"))
    [page] = h.run(1)
    assert page.kind == "firing"
    h.feed(drift())  # a medium alert joining waits for the group interval...
    assert h.run(30) == []
    h.feed(finding(stage="detector", rule="weights-leaked", severity="critical", model_id="fraud-v3"))
    [changed] = h.run(1)  # ...a critical one does not
    assert changed.kind == "changed"
    assert {a.labels["rule"] for a in changed.alerts if a.joined} == {"adwin-mean-shift", "weights-leaked"}
