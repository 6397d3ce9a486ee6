"""alerting.gate: findings become alert rows inside the pipeline, deduplicated and counted."""

from __future__ import annotations

import pytest

from alerting import AlertGate, fingerprint, fingerprint_of, labels_of
from schemas.records import FindingRow
from tests.clock import FakeClock
from tests.factories import finding


@pytest.fixture
def gate(clock: FakeClock) -> AlertGate:
    return AlertGate(min_severity="medium", resolve_timeout=300.0, clock=clock, wall_clock=clock.wall)


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
    assert len(AlertGate(min_severity="info", clock=clock).admit([finding(severity="info")])) == 1


def test_unknown_min_severity_is_refused_with_the_choices() -> None:
    with pytest.raises(ValueError, match=r"urgent.*info, low, medium, high, critical"):
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


def test_a_burst_in_one_batch_is_one_row_with_the_count(gate: AlertGate) -> None:
    burst = [finding() for _ in range(500)]
    [alert] = gate.admit(burst)
    assert alert.occurrences == 500
    assert alert.event_id == burst[-1].event_id  # the latest occurrence is the evidence at hand
    assert alert.ts == burst[0].ts  # the instance started with the first


def test_repeats_keep_one_alert_id_and_count_up(gate: AlertGate, clock: FakeClock) -> None:
    [first] = gate.admit([finding()])
    clock.advance(60)
    [second] = gate.admit([finding(), finding()])
    clock.advance(299)
    [third] = gate.admit([finding()])
    assert first.alert_id == second.alert_id == third.alert_id
    assert [first.occurrences, second.occurrences, third.occurrences] == [1, 3, 4]
    assert third.fired_at > first.fired_at  # the newest row wins in alerts_unique


def test_quiet_for_the_resolve_timeout_starts_a_new_instance(gate: AlertGate, clock: FakeClock) -> None:
    [first] = gate.admit([finding()])
    clock.advance(300)
    [again] = gate.admit([finding()])
    assert again.fingerprint == first.fingerprint
    assert again.alert_id != first.alert_id
    assert again.occurrences == 1


def test_severity_escalates_within_an_instance(gate: AlertGate) -> None:
    gate.admit([finding(severity="medium")])
    [alert] = gate.admit([finding(severity="critical"), finding(severity="medium")])
    assert alert.severity == "critical"
    assert alert.title.startswith("[CRITICAL]")


def test_below_threshold_findings_are_not_counted(gate: AlertGate) -> None:
    gate.admit([finding(severity="high")])
    assert gate.admit([finding(severity="low"), finding(severity="info")]) == []
    [alert] = gate.admit([finding(severity="high")])
    assert alert.occurrences == 2


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
    assert len({a.fingerprint for a in alerts}) == len(alerts) == 5


def test_severity_is_not_part_of_the_fingerprint() -> None:
    assert fingerprint_of(finding(severity="medium")) == fingerprint_of(finding(severity="critical"))


def test_detector_findings_from_different_principals_share_an_alert(gate: AlertGate) -> None:
    a = finding(stage="detector", rule="adwin-mean-shift", severity="medium", principal_id="svc-checkout")
    b = finding(stage="detector", rule="adwin-mean-shift", severity="medium", principal_id="svc-batch")
    assert fingerprint_of(a) == fingerprint_of(b)
    [alert] = gate.admit([a, b])
    assert alert.occurrences == 2


@pytest.mark.parametrize("stage", ["policy", "identity"])
def test_policy_and_identity_findings_are_per_principal(gate: AlertGate, stage: str) -> None:
    a = finding(stage=stage, principal_id="bob")
    b = finding(stage=stage, principal_id="mallory")
    assert fingerprint_of(a) != fingerprint_of(b)
    assert len(gate.admit([a, b])) == 2


def test_a_principal_denied_on_two_resources_raises_two_alerts_and_repeats_fold(gate: AlertGate) -> None:
    def denied(dataset: str) -> FindingRow:
        return finding(stage="policy", principal_id="bob", resource_kind="dataset", resource_id=dataset)

    alerts = gate.admit([denied("ds-customers"), denied("ds-payroll"), denied("ds-customers")])
    assert {(a.resource_id, a.occurrences) for a in alerts} == {("ds-customers", 2), ("ds-payroll", 1)}
    assert len({a.fingerprint for a in alerts}) == 2


def test_failures_of_two_signing_keys_raise_two_alerts(gate: AlertGate) -> None:
    forged = [
        finding(stage="identity", rule="identity-bad-signature", key_id=key, resource_id=f"ds-{n}")
        for n, key in enumerate(["svc-a-2026", "svc-b-2026", "svc-a-2026"])
    ]
    alerts = gate.admit(forged)
    assert {(a.key_id, a.occurrences) for a in alerts} == {("svc-a-2026", 2), ("svc-b-2026", 1)}


def test_one_key_forging_many_resources_stays_one_alert(gate: AlertGate) -> None:
    """The resources a forged event names are the forger's choice, not the incident."""
    forged = [
        finding(stage="identity", rule="identity-bad-signature", key_id="svc-a-2026", resource_id=f"ds-{n}")
        for n in range(100)
    ]
    [alert] = gate.admit(forged)
    assert alert.occurrences == 100


def test_access_anomalies_on_different_resources_stay_one_alert_per_principal(gate: AlertGate) -> None:
    spree = [
        finding(stage="detector", rule="access-burst", principal_id=who, resource_id=f"ds-{n}")
        for n in range(10)
        for who in ("bob", "mallory")
    ]
    alerts = gate.admit(spree)
    assert sorted((a.principal_id, a.occurrences) for a in alerts) == [("bob", 10), ("mallory", 10)]


def test_the_notifier_finds_the_fingerprint_the_worker_gave_from_the_alert_row(gate: AlertGate) -> None:
    rows = gate.admit(
        [
            finding(stage="policy", resource_kind="dataset", resource_id="ds-1", key_id="k1"),
            finding(stage="identity", rule="identity-replay", key_id="k1", resource_id="ds-1"),
            finding(stage="detector", rule="feature-drift", resource_id="fraud-v3", key_id="k1"),
        ]
    )
    assert [fingerprint(labels_of(row)) for row in rows] == [row.fingerprint for row in rows]
    assert [labels_of(row).get("resource", "") for row in rows] == ["dataset/ds-1", "", ""]
    assert [labels_of(row).get("key", "") for row in rows] == ["", "k1", ""]


def test_fingerprints_are_stable_across_processes() -> None:
    drift = finding(stage="detector", rule="adwin-mean-shift", model_id="fraud-v3", principal_id="x")
    assert fingerprint_of(drift) == "6a765e70f6007669"


def test_capacity_is_bounded_and_new_alerts_still_fire(clock: FakeClock) -> None:
    gate = AlertGate(max_fingerprints=10, clock=clock)
    alerts = gate.admit([finding(principal_id=f"user-{i}") for i in range(50)])
    assert len(alerts) == 50
    assert len(gate._instances) <= 10
    assert gate.evicted == 40


def test_capacity_prefers_forgetting_resolved_instances(clock: FakeClock) -> None:
    gate = AlertGate(max_fingerprints=2, resolve_timeout=60, clock=clock)
    [_old] = gate.admit([finding(principal_id="old")])
    clock.advance(61)
    gate.admit([finding(principal_id="live")])
    gate.admit([finding(principal_id="new")])
    assert gate.evicted == 0
    [live] = gate.admit([finding(principal_id="live")])
    assert live.occurrences == 2


def test_an_unverified_event_raises_its_identity_alert_only(gate: AlertGate) -> None:
    forged = finding(stage="identity", rule="identity-bad-signature", severity="critical", event_id="e1")
    denied = finding(stage="policy", rule="verified-sender", severity="high", event_id="e1")
    other = finding(stage="policy", rule="verified-sender", severity="high", event_id="e2")
    alerts = gate.admit([forged, denied, other])
    assert [(a.stage, a.event_id) for a in alerts] == [("identity", "e1"), ("policy", "e2")]


def test_forgeries_and_replays_on_one_model_are_two_alerts(gate: AlertGate) -> None:
    forged = finding(stage="identity", rule="identity-bad-signature", severity="critical", event_id="e1")
    replayed = finding(stage="identity", rule="identity-replayed", severity="high", event_id="e2")
    denials = [finding(stage="policy", rule="verified-sender", event_id=e) for e in ("e1", "e2")]
    alerts = gate.admit([forged, replayed, *denials])
    assert sorted(a.detector_or_rule for a in alerts) == ["identity-bad-signature", "identity-replayed"]


def test_access_anomalies_of_two_principals_are_two_alerts_named_after_them(gate: AlertGate) -> None:
    def anomaly(principal: str) -> object:
        return finding(
            stage="detector",
            rule="access-new-resource",
            severity="medium",
            model_id="",
            principal_id=principal,
        )

    alerts = gate.admit([anomaly("bob"), anomaly("carol"), anomaly("bob")])
    assert [(a.title, a.occurrences) for a in alerts] == [
        ("[MEDIUM] access-new-resource on bob", 2),
        ("[MEDIUM] access-new-resource on carol", 1),
    ]


def test_drift_of_one_model_is_one_alert_whoever_calls_it(gate: AlertGate) -> None:
    drifts = [
        finding(stage="detector", rule="feature-drift", severity="medium", principal_id=p) for p in "ab"
    ]
    [alert] = gate.admit(drifts)
    assert alert.title == "[MEDIUM] feature-drift on fraud-v3"
