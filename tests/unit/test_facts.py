"""policies.facts: the coarse facts an event, its verdict and the inventory yield."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from identity.tokens import TokenResult
from identity.verify import Verdict
from policies.bundle import PACK_DIR, SCHEMA_FILE
from policies.facts import FACT_DEFAULTS, FACT_NAMES, FactValue, complete, derive
from policies.inventory import Inventory
from tests.factories import (
    PII_DATASET,
    PII_DATASET_DIGEST,
    QUARANTINED_MODEL,
    TRAINING_DATASET,
    UNAPPROVED_DATASET,
    access_doc,
    build_inventory,
    event_of,
    feedback_doc,
    inference_doc,
    inventory_data,
    make_inventory,
    training_doc,
)

OK = Verdict(True, "ok", "k")
FORGED = Verdict(False, "bad_signature", "k")
# Wednesday 4 March 2026, 10:00 UTC: inside the test inventory's business hours.
BUSINESS_TS = "2026-03-04T10:00:00+00:00"


@pytest.fixture(scope="module")
def inventory() -> Inventory:
    return build_inventory()


def facts_of(document: dict[str, Any], inventory: Inventory, verdict: Verdict = OK) -> dict[str, FactValue]:
    event = event_of(document)
    facts = derive(event, verdict, inventory)
    assert [name for name, _ in facts] == list(FACT_NAMES)  # every fact, canonical order
    return dict(facts)


# --- the fact set itself --------------------------------------------------------------------


def test_facts_match_the_cedar_schema() -> None:
    """A fact the schema does not declare (or declares with another type) fails validation."""
    schema = (PACK_DIR / SCHEMA_FILE).read_text()
    body = re.search(r"type Facts = \{(.*?)\};", schema, re.DOTALL)
    assert body is not None
    declared = dict(re.findall(r"(\w+): (Bool|String)", body.group(1)))
    expected = {name: "Bool" if isinstance(v, bool) else "String" for name, v in FACT_DEFAULTS.items()}
    assert declared == expected


def test_complete_fills_defaults_in_canonical_order() -> None:
    facts = complete({"outcome": "denied", "verified": True})
    assert [name for name, _ in facts] == list(FACT_NAMES)
    assert dict(facts) == {**FACT_DEFAULTS, "outcome": "denied", "verified": True}


def test_complete_refuses_unknown_facts() -> None:
    with pytest.raises(KeyError, match="mfaa"):
        complete({"mfaa": True})


def test_facts_are_hashable_and_equal_for_equal_events(inventory: Inventory) -> None:
    a = derive(event_of(inference_doc(ts=BUSINESS_TS)), OK, inventory)
    b = derive(event_of(inference_doc(ts=BUSINESS_TS)), OK, inventory)
    assert a == b
    assert hash(a) == hash(b)


# --- identity facts ---------------------------------------------------------------------------


def test_verified_and_token_facts(inventory: Inventory) -> None:
    token = TokenResult(True, "ok", ("analyst",), mfa=False)
    assert facts_of(access_doc(), inventory)["verified"] is True
    assert facts_of(access_doc(), inventory, FORGED)["verified"] is False
    assert facts_of(access_doc(), inventory)["token_verified"] is False
    with_token = Verdict(True, "ok", "k", token)
    assert facts_of(access_doc(), inventory, with_token)["token_verified"] is True


@pytest.mark.parametrize(
    ("token", "claimed", "mfa"),
    [
        (None, True, True),  # no token: the signed access event's own field
        (None, False, False),
        (TokenResult(True, "ok", (), mfa=True), False, True),  # the token outranks the event
        (TokenResult(True, "ok", (), mfa=False), True, False),
        (TokenResult(False, "token_expired", (), mfa=True), False, False),  # a failed token proves nothing
        (TokenResult(False, "token_expired", (), mfa=False), True, True),
    ],
)
def test_mfa_from_a_verified_token_else_the_event(
    inventory: Inventory, token: TokenResult | None, claimed: bool, mfa: bool
) -> None:
    verdict = OK if token is None else Verdict(True, "ok", "k", token)
    assert facts_of(access_doc(action="export", mfa=claimed), inventory, verdict)["mfa"] is mfa


def test_mfa_is_false_for_events_without_an_mfa_field(inventory: Inventory) -> None:
    for builder in (inference_doc, feedback_doc, training_doc):
        assert facts_of(builder(), inventory)["mfa"] is False
    token = Verdict(True, "ok", "k", TokenResult(True, "ok", (), mfa=True))
    assert facts_of(training_doc(), inventory, token)["mfa"] is True


def test_principal_known(inventory: Inventory) -> None:
    assert facts_of(access_doc(principal="bob"), inventory)["principal_known"] is True
    assert facts_of(access_doc(principal="eve"), inventory)["principal_known"] is False


# --- models ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model_id", "status"),
    [
        ("fraud-v3", "approved"),
        (QUARANTINED_MODEL, "quarantined"),
        ("churn-v1", "pending"),
        ("ranker-v0", "retired"),
        ("ghost-v9", "unregistered"),
    ],
)
def test_model_status(inventory: Inventory, model_id: str, status: str) -> None:
    assert facts_of(inference_doc(model_id=model_id), inventory)["model_status"] == status


def test_artifact_matches_the_registered_digest(inventory: Inventory) -> None:
    assert facts_of(inference_doc(), inventory)["artifact_matches"] is True
    rogue = inference_doc(artifact_digest="sha256:fraud-v3-rebuilt-elsewhere")
    assert facts_of(rogue, inventory)["artifact_matches"] is False
    assert facts_of(inference_doc(model_id="ghost-v9"), inventory)["artifact_matches"] is False


def test_artifact_never_matches_a_model_registered_without_a_digest() -> None:
    inventory = build_inventory(inventory_data(models=[{"id": "fraud-v3", "status": "approved"}]))
    assert facts_of(inference_doc(), inventory)["artifact_matches"] is False


def test_training_event_artifact_is_compared_too(inventory: Inventory) -> None:
    assert facts_of(training_doc(action="deploy"), inventory)["artifact_matches"] is True
    other = training_doc(action="deploy", artifact_digest="sha256:unreviewed")
    assert facts_of(other, inventory)["artifact_matches"] is False
    no_artifact = training_doc(action="deploy")
    del no_artifact["artifact_digest"]
    assert facts_of(no_artifact, inventory)["artifact_matches"] is False


def test_feedback_has_a_model_status_but_no_artifact(inventory: Inventory) -> None:
    facts = facts_of(feedback_doc(), inventory)
    assert (facts["model_status"], facts["artifact_matches"]) == ("approved", False)


def test_access_to_a_model_resource_has_its_status(inventory: Inventory) -> None:
    facts = facts_of(access_doc(resource={"kind": "model", "id": QUARANTINED_MODEL}), inventory)
    assert facts["model_status"] == "quarantined"
    assert facts["dataset_classification"] == "none"


def test_access_to_an_endpoint_has_neither_model_nor_dataset_facts(inventory: Inventory) -> None:
    facts = facts_of(access_doc(resource={"kind": "endpoint", "id": "fraud-v3"}), inventory)
    for name in ("model_status", "artifact_matches", "dataset_approved", "dataset_classification"):
        assert facts[name] == FACT_DEFAULTS[name], name


# --- datasets ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dataset", "digest", "approved", "classification", "digest_known"),
    [
        (TRAINING_DATASET, "sha256:ds-77ab01", True, "confidential", True),
        (TRAINING_DATASET, "sha256:ds-tampered", True, "confidential", False),
        (PII_DATASET, PII_DATASET_DIGEST, True, "pii", True),
        (UNAPPROVED_DATASET, "sha256:whatever", False, "public", False),
        ("never-heard-of-it", "sha256:x", False, "unregistered", False),
    ],
)
def test_training_dataset_facts(
    inventory: Inventory, dataset: str, digest: str, approved: bool, classification: str, digest_known: bool
) -> None:
    facts = facts_of(training_doc(dataset_id=dataset, dataset_digest=digest), inventory)
    assert (facts["dataset_approved"], facts["dataset_classification"], facts["dataset_digest_known"]) == (
        approved,
        classification,
        digest_known,
    )


def test_access_to_a_dataset_has_its_classification(inventory: Inventory) -> None:
    facts = facts_of(access_doc(resource={"kind": "dataset", "id": PII_DATASET}), inventory)
    assert (facts["dataset_approved"], facts["dataset_classification"]) == (True, "pii")
    assert facts["dataset_digest_known"] is False  # an access event names no digest
    assert facts["model_status"] == "none"


def test_inference_has_no_dataset_facts(inventory: Inventory) -> None:
    assert facts_of(inference_doc(), inventory)["dataset_classification"] == "none"


# --- approval and outcome ----------------------------------------------------------------------


def test_approval_present(inventory: Inventory) -> None:
    assert facts_of(training_doc(approved=True), inventory)["approval_present"] is True
    assert facts_of(training_doc(approved=False), inventory)["approval_present"] is False
    assert facts_of(access_doc(), inventory)["approval_present"] is False


def test_outcome_of_access_events(inventory: Inventory) -> None:
    assert facts_of(access_doc(outcome="denied"), inventory)["outcome"] == "denied"
    assert facts_of(inference_doc(), inventory)["outcome"] == "none"


# --- off hours, by the inventory's calendar ------------------------------------------------------


def _calendar(**calendar: Any) -> Inventory:
    return build_inventory(inventory_data(calendar=calendar))


@pytest.mark.parametrize(
    ("ts", "off"),
    [
        ("2026-03-04T10:00:00Z", False),  # Wednesday
        ("2026-03-04T07:00:00Z", False),  # start is inside
        ("2026-03-04T06:59:59Z", True),
        ("2026-03-04T19:00:00Z", True),  # end is outside
        ("2026-03-04T18:59:59Z", False),
        ("2026-03-07T10:00:00Z", True),  # Saturday
        ("2026-03-08T10:00:00Z", True),  # Sunday
        ("2026-03-04T11:30:00+02:00", False),  # 09:30 UTC
        ("2026-03-04T20:30:00+02:00", False),  # 18:30 UTC
        ("2026-03-05T01:30:00+10:00", False),  # Wednesday 15:30 UTC, Thursday locally
    ],
)
def test_off_hours_in_utc(inventory: Inventory, ts: str, off: bool) -> None:
    assert facts_of(access_doc(ts=ts), inventory)["off_hours"] is off


@pytest.mark.parametrize(
    ("ts", "off"),
    [
        ("2026-03-02T07:30:00Z", False),  # Monday 08:30 in Berlin (UTC+1 in winter)
        ("2026-03-02T06:30:00Z", True),  # 07:30 in Berlin, before 08:00
        ("2026-03-30T06:30:00Z", False),  # 08:30 in Berlin: summer time (UTC+2) from 29 March
        ("2026-03-02T17:30:00Z", True),  # 18:30 in Berlin
        ("2026-03-06T23:30:00Z", True),  # Saturday 00:30 in Berlin, still Friday in UTC
    ],
)
def test_off_hours_in_the_calendars_time_zone(ts: str, off: bool) -> None:
    inventory = _calendar(timezone="Europe/Berlin", business_hours=["08:00", "18:00"])
    assert facts_of(access_doc(ts=ts), inventory)["off_hours"] is off


def test_weekend_is_local_too() -> None:
    """Sunday 23:30 UTC is Monday 08:30 in Tokyo: business hours there."""
    tokyo = _calendar(timezone="Asia/Tokyo", business_hours=["08:00", "20:00"])
    utc = _calendar(business_hours=["08:00", "20:00"])
    monday_in_tokyo = access_doc(ts="2026-03-08T23:30:00Z")
    assert facts_of(monday_in_tokyo, tokyo)["off_hours"] is False
    assert facts_of(monday_in_tokyo, utc)["off_hours"] is True


def test_working_weekdays_are_configurable() -> None:
    inventory = _calendar(weekdays=["sat", "sun"])
    assert facts_of(access_doc(ts="2026-03-07T10:00:00Z"), inventory)["off_hours"] is False
    assert facts_of(access_doc(ts="2026-03-04T10:00:00Z"), inventory)["off_hours"] is True


def test_empty_inventory_knows_nothing() -> None:
    facts = facts_of(training_doc(), Inventory())
    assert facts["principal_known"] is False
    assert facts["model_status"] == "unregistered"
    assert facts["dataset_classification"] == "unregistered"
    assert facts["dataset_approved"] is False


def test_facts_do_not_depend_on_the_verdict_except_identity(inventory: Inventory) -> None:
    document = training_doc(ts=BUSINESS_TS)
    verified = facts_of(document, inventory, OK)
    forged = facts_of(document, inventory, FORGED)
    assert {k for k in verified if verified[k] != forged[k]} == {"verified"}


def test_facts_from_an_inventory_file(tmp_path: Path) -> None:
    inventory = make_inventory(tmp_path)
    assert facts_of(inference_doc(), inventory)["model_status"] == "approved"
