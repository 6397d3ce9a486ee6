"""alerting.annotate: the runbook an operator sets is the one the alert links to."""

from __future__ import annotations

from datetime import UTC, datetime

from alerting.annotate import annotate, evidence_query
from alerting.config import parse_config

LABELS = {"stage": "policy", "rule": "export-needs-mfa", "principal": "bob o'neil", "severity": "high"}
SHIPPED = {"runbooks": ["https://runbooks.vigil.example/export"], "controls": ["soc2:CC6.1"]}


def config(**global_: str) -> object:
    return parse_config({"global": global_, "receivers": [{"name": "r"}], "route": {"receiver": "r"}})


def test_the_operators_template_wins_over_the_link_a_shipped_policy_carries() -> None:
    found = annotate(
        config(runbook_url_template="https://wiki.corp/rb/{rule}?who={principal}"), LABELS, SHIPPED
    )
    assert found.runbook_url == "https://wiki.corp/rb/export-needs-mfa?who=bob%20o%27neil"
    assert found.controls == ("soc2:CC6.1",)


def test_without_a_template_the_policys_own_runbook_is_used() -> None:
    assert annotate(config(), LABELS, SHIPPED).runbook_url == "https://runbooks.vigil.example/export"


def test_evidence_of_an_access_anomaly_selects_its_principal_and_of_drift_any_caller() -> None:
    since = datetime(2026, 1, 1, tzinfo=UTC)
    access = evidence_query({"stage": "detector", "rule": "access-burst", "principal": "bob"}, since)
    drift = evidence_query({"stage": "detector", "rule": "feature-drift", "model": "m"}, since)
    assert "principal_id = 'bob'" in access
    assert "principal_id" not in drift.split("WHERE", 1)[1]


def test_evidence_selects_the_resource_of_a_policy_alert_and_the_key_of_an_identity_alert() -> None:
    since = datetime(2026, 11, 26, 9, 58, tzinfo=UTC)
    denied = evidence_query(
        {"stage": "policy", "rule": "r", "principal": "bob", "resource": "dataset/ds-1"}, since
    )
    forged = evidence_query({"stage": "identity", "rule": "identity-bad-signature", "key": "k'1"}, since)
    assert "concat(resource_kind, '/', resource_id) = 'dataset/ds-1'" in denied
    assert "key_id = 'k\\'1'" in forged
    assert "key_id" not in denied
    assert "resource_id" not in forged
