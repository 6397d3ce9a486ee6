"""alerting.gate: which findings notify someone, and how often."""

from __future__ import annotations

import pytest

from alerting import AlertGate, fingerprint_of
from tests.factories import finding


class FakeClock:
    def __init__(self, start: float = 1_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def gate(clock: FakeClock) -> AlertGate:
    return AlertGate(min_severity="medium", repeat_interval=300.0, clock=clock)


@pytest.mark.parametrize("severity", ["info", "low"])
def test_below_threshold_severities_never_alert(gate: AlertGate, severity: str) -> None:
    assert gate.admit([finding(severity=severity) for _ in range(3)]) == []


@pytest.mark.parametrize("severity", ["medium", "high", "critical"])
def test_at_or_above_threshold_alerts(gate: AlertGate, severity: str) -> None:
    [alert] = gate.admit([finding(severity=severity)])
    assert alert.severity == severity
    assert alert.occurrences == 1


def test_threshold_is_configurable(clock: FakeClock) -> None:
    strict = AlertGate(min_severity="critical", clock=clock)
    assert strict.admit([finding(severity="high")]) == []
    assert len(strict.admit([finding(severity="critical")])) == 1
    chatty = AlertGate(min_severity="info", clock=clock)
    assert len(chatty.admit([finding(severity="info")])) == 1


def test_unknown_min_severity_is_refused() -> None:
    with pytest.raises(ValueError, match="urgent"):
        AlertGate(min_severity="urgent")


def test_first_finding_alerts_with_its_details(gate: AlertGate) -> None:
    first = finding(rule="export-needs-mfa", severity="high", model_id="", principal_id="bob")
    [alert] = gate.admit([first])
    assert alert.fingerprint == fingerprint_of(first)
    assert alert.event_id == first.event_id
    assert alert.principal_id == "bob"
    assert alert.summary == first.message
    assert alert.title == "[HIGH] export-needs-mfa on bob"  # no model: the principal is the subject
    assert alert.ts == first.ts


def test_repeats_inside_the_interval_are_folded(gate: AlertGate, clock: FakeClock) -> None:
    assert len(gate.admit([finding()])) == 1
    clock.advance(10)
    assert gate.admit([finding(), finding()]) == []
    clock.advance(289)
    assert gate.admit([finding()]) == []


def test_repeats_in_one_batch_alert_once(gate: AlertGate) -> None:
    alerts = gate.admit([finding() for _ in range(5)])
    assert len(alerts) == 1
    assert alerts[0].occurrences == 1


def test_folded_repeats_are_counted_into_the_next_alert(gate: AlertGate, clock: FakeClock) -> None:
    gate.admit([finding()])
    for _ in range(4):
        clock.advance(30)
        gate.admit([finding()])
    clock.advance(300)
    later = finding()
    [alert] = gate.admit([later])
    assert alert.occurrences == 5  # this finding plus the four folded ones
    assert alert.event_id == later.event_id
    # the count starts over after an alert
    clock.advance(301)
    [again] = gate.admit([finding()])
    assert again.occurrences == 1


def test_interval_is_measured_from_the_last_alert(gate: AlertGate, clock: FakeClock) -> None:
    gate.admit([finding()])
    clock.advance(300)  # exactly the interval: allowed again
    assert len(gate.admit([finding()])) == 1
    clock.advance(299)
    assert gate.admit([finding()]) == []


def test_below_threshold_findings_are_not_counted(gate: AlertGate, clock: FakeClock) -> None:
    gate.admit([finding(severity="high")])
    gate.admit([finding(severity="low"), finding(severity="info")])
    clock.advance(301)
    [alert] = gate.admit([finding(severity="high")])
    assert alert.occurrences == 1


def test_distinct_fingerprints_alert_independently(gate: AlertGate) -> None:
    alerts = gate.admit(
        [
            finding(rule="default-deny", principal_id="bob"),
            finding(rule="default-deny", principal_id="carol"),
            finding(rule="export-needs-mfa", principal_id="bob"),
            finding(rule="default-deny", principal_id="bob", model_id="credit-v2"),
            finding(stage="identity", rule="default-deny", principal_id="bob"),
        ]
    )
    assert len(alerts) == 5
    assert len({a.fingerprint for a in alerts}) == 5


def test_detector_findings_from_different_principals_share_a_fingerprint(gate: AlertGate) -> None:
    a = finding(stage="detector", rule="adwin-mean-shift", severity="medium", principal_id="svc-checkout")
    b = finding(stage="detector", rule="adwin-mean-shift", severity="medium", principal_id="svc-batch")
    assert fingerprint_of(a) == fingerprint_of(b)
    assert len(gate.admit([a, b])) == 1


@pytest.mark.parametrize("stage", ["policy", "identity"])
def test_policy_and_identity_findings_are_per_principal(gate: AlertGate, stage: str) -> None:
    a = finding(stage=stage, principal_id="bob")
    b = finding(stage=stage, principal_id="mallory")
    assert fingerprint_of(a) != fingerprint_of(b)
    assert len(gate.admit([a, b])) == 2


def test_detector_findings_are_per_model(gate: AlertGate) -> None:
    a = finding(stage="detector", rule="adwin-mean-shift", model_id="fraud-v3")
    b = finding(stage="detector", rule="adwin-mean-shift", model_id="credit-v2")
    assert len(gate.admit([a, b])) == 2


def test_alert_ids_are_unique_per_finding(gate: AlertGate, clock: FakeClock) -> None:
    first = gate.admit([finding()])
    clock.advance(301)
    second = gate.admit([finding()])
    assert first[0].fingerprint == second[0].fingerprint
    assert first[0].alert_id != second[0].alert_id


def test_fingerprint_capacity_is_bounded_and_keeps_alerting(clock: FakeClock) -> None:
    gate = AlertGate(max_fingerprints=10, clock=clock)
    alerts = gate.admit([finding(principal_id=f"user-{i}") for i in range(50)])
    assert len(alerts) == 50  # new fingerprints always alert the first time
    assert len(gate._folded) <= 10
