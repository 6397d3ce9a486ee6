"""The bundled Cedar pack, bundle loading and validation, requests and the caching engine."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from identity.tokens import TokenResult
from identity.verify import Verdict
from policies import (
    AuthzRequest,
    BundleError,
    Decision,
    PolicyBundle,
    PolicyEngine,
    load_bundle,
    request_for,
)
from policies.bundle import PACK_DIR, SCHEMA_FILE, validate_bundle
from policies.controls import load_catalog
from policies.engine import DEFAULT_DENY, EVALUATION_ERROR
from policies.facts import FACT_NAMES, complete
from policies.inventory import Inventory, InventoryError
from tests.factories import (
    PII_DATASET,
    PII_DATASET_DIGEST,
    QUARANTINED_MODEL,
    UNAPPROVED_DATASET,
    access_doc,
    build_inventory,
    event_of,
    feedback_doc,
    inference_doc,
    inventory_data,
    training_doc,
    with_principals,
)

FULL = ("stable", "incubating")
OK = Verdict(True, "ok", "k")
FORGED = Verdict(False, "bad_signature", "k")
REPLAYED = Verdict(False, "replay", "k")
BUSINESS_TS = "2026-03-04T10:00:00+00:00"  # a Wednesday morning
OFF_HOURS_TS = "2026-03-04T22:00:00+00:00"
WEEKEND_TS = "2026-03-07T10:00:00+00:00"


@pytest.fixture(scope="module")
def inventory() -> Inventory:
    return build_inventory()


@pytest.fixture(scope="module")
def bundle() -> PolicyBundle:
    """The whole pack, stable and incubating."""
    return load_bundle(maturities=FULL)


@pytest.fixture(scope="module")
def stable_bundle() -> PolicyBundle:
    return load_bundle()


@pytest.fixture
def engine(bundle: PolicyBundle, inventory: Inventory) -> PolicyEngine:
    return PolicyEngine(bundle, inventory)


def decide(engine: PolicyEngine, document: dict[str, Any], verdict: Verdict = OK) -> Decision:
    event = event_of(document)
    [decision] = engine.decide_many([request_for(event, verdict, engine.inventory)])
    return decision


def deciding(decision: Decision) -> tuple[bool, list[str]]:
    """Allowed, and the deciding ids in a stable order (cedarpy returns them unordered)."""
    assert decision.errors == (), decision.errors
    return decision.allowed, sorted(decision.policy_ids)


# --- every policy of the pack, allowed and denied ------------------------------------------


@dataclass(frozen=True)
class Case:
    name: str
    policy: str
    """The policy this case exercises."""
    build: Callable[[], dict[str, Any]]
    allowed: bool
    ids: tuple[str, ...]
    verdict: Verdict = OK


def at_work(builder: Callable[..., dict[str, Any]], **fields: Any) -> Callable[[], dict[str, Any]]:
    """An event during business hours, so the change-window policies stay out of the way."""
    return lambda: builder(**{"ts": BUSINESS_TS, **fields})


def allowed(name: str, policy: str, build: Callable[[], dict[str, Any]], *ids: str) -> Case:
    return Case(name, policy, build, True, ids or (policy,))


def denied(name: str, policy: str, build: Callable[[], dict[str, Any]], *ids: str, **kw: Any) -> Case:
    return Case(name, policy, build, False, ids or (policy,), **kw)


RELEASE = {"principal": "rita", "roles": ("release-manager",)}
ZT = "zt-unverified-denied"
APPROVED_MODEL = "inference-requires-approved-model"
ARTIFACT = "inference-artifact-matches-registry"
DATASET = "training-requires-approved-dataset"
PII = "pii-training-requires-approval"
OUTSIDE = "deploy-outside-business-hours"
DEPLOY_ARTIFACT = "deploy-artifact-matches-registry"
FINE_TUNE = "fine-tune-by-ml-engineers"
FINE_TUNE_APPROVAL = "fine-tune-requires-approval"
DEPLOY = "deploy-by-release-managers"
DEPLOY_APPROVAL = "deploy-requires-approval"
CANONICAL = "zt-identifiers-canonical"
UNKNOWN_DATASET = "dataset-must-be-registered"
UNKNOWN_MODEL = "model-must-be-registered"
EVALUATION = "release-meets-evaluation-thresholds"
FAIRNESS = "release-meets-fairness-thresholds"
FAIR_AND_GOOD = {"auc": 0.93, "demographic_parity_difference": 0.04}
LOOKALIKE = "\u0441ustomers-pii"  # Cyrillic es: looks like customers-pii

CASES: list[Case] = [
    # stable/zero-trust
    allowed("verified-read", ZT, at_work(access_doc), "read-by-analysts"),
    denied("forged-read", ZT, at_work(access_doc), verdict=FORGED),
    denied("replayed-inference", ZT, at_work(inference_doc), verdict=REPLAYED),
    allowed("canonical-ids", CANONICAL, at_work(access_doc), "read-by-analysts"),
    *[
        denied(
            f"ingest-{label}",
            CANONICAL,
            at_work(training_doc, action="ingest", principal="carol", dataset_id=variant),
            CANONICAL,
            UNKNOWN_DATASET,
        )
        for label, variant in (
            ("case-variant", "Customers-PII"),
            ("trailing-space", "customers-pii "),
            ("look-alike", LOOKALIKE),
        )
    ],
    denied(
        "non-canonical-principal",
        CANONICAL,
        at_work(access_doc, principal="bob\u200b"),
    ),
    # stable/registry
    allowed(
        "ingest-registered-dataset",
        UNKNOWN_DATASET,
        at_work(training_doc, action="ingest", principal="carol"),
        "ingest-by-data-roles",
    ),
    denied(
        "ingest-unknown-dataset",
        UNKNOWN_DATASET,
        at_work(training_doc, action="ingest", principal="carol", dataset_id="customers-pii-2"),
    ),
    denied(
        "read-unknown-dataset",
        UNKNOWN_DATASET,
        at_work(access_doc, resource={"kind": "dataset", "id": "scratch"}),
    ),
    allowed(
        "deploy-registered-model", UNKNOWN_MODEL, at_work(training_doc, action="deploy", **RELEASE), DEPLOY
    ),
    denied(
        "deploy-unknown-model",
        UNKNOWN_MODEL,
        at_work(training_doc, action="deploy", model_id="shadow-v1", **RELEASE),
        UNKNOWN_MODEL,
        DEPLOY_ARTIFACT,
    ),
    # stable/access
    allowed("analyst-read", "read-by-analysts", at_work(access_doc, action="read")),
    allowed("analyst-login", "read-by-analysts", at_work(access_doc, action="login")),
    denied("contractor-read", "read-by-analysts", at_work(access_doc, principal="mallory"), DEFAULT_DENY),
    denied("analyst-write", "read-by-analysts", at_work(access_doc, action="write"), DEFAULT_DENY),
    *[
        allowed(
            f"data-engineer-{a}", "write-by-data-engineers", at_work(access_doc, action=a, principal="carol")
        )
        for a in ("write", "delete", "read", "login")
    ],
    denied("analyst-delete", "write-by-data-engineers", at_work(access_doc, action="delete"), DEFAULT_DENY),
    allowed("analyst-export-with-mfa", "export-by-analysts", at_work(access_doc, action="export", mfa=True)),
    denied(
        "data-engineer-export",
        "export-by-analysts",
        at_work(access_doc, action="export", mfa=True, principal="carol"),
        DEFAULT_DENY,
    ),
    allowed(
        "export-with-mfa",
        "export-requires-mfa",
        at_work(access_doc, action="export", mfa=True),
        "export-by-analysts",
    ),
    denied(
        "analyst-export-without-mfa", "export-requires-mfa", at_work(access_doc, action="export", mfa=False)
    ),
    denied(
        "data-engineer-export-without-mfa",
        "export-requires-mfa",
        at_work(access_doc, action="export", mfa=False, principal="carol"),
    ),
    # stable/inference
    allowed("serving-infer", "inference-by-serving-roles", at_work(inference_doc)),
    allowed(
        "lending-infer",
        "inference-by-serving-roles",
        at_work(inference_doc, model_id="credit-v2", principal="svc-lending", source="lending-api"),
    ),
    denied(
        "labeler-infer",
        "inference-by-serving-roles",
        at_work(inference_doc, principal="svc-labeler", source="labeling"),
        DEFAULT_DENY,
    ),
    denied(
        "unknown-service-infer",
        "inference-by-serving-roles",
        at_work(inference_doc, principal="svc-x"),
        DEFAULT_DENY,
    ),
    allowed("approved-model", APPROVED_MODEL, at_work(inference_doc), "inference-by-serving-roles"),
    *[
        denied(f"{status}-model", APPROVED_MODEL, at_work(inference_doc, model_id=model))
        for status, model in (
            ("quarantined", QUARANTINED_MODEL),
            ("pending", "churn-v1"),
            ("retired", "ranker-v0"),
        )
    ],
    denied(
        "unregistered-model",
        APPROVED_MODEL,
        at_work(inference_doc, model_id="ghost-v9"),
        APPROVED_MODEL,
        ARTIFACT,
        UNKNOWN_MODEL,
    ),
    allowed("registered-artifact", ARTIFACT, at_work(inference_doc), "inference-by-serving-roles"),
    denied("rogue-artifact", ARTIFACT, at_work(inference_doc, artifact_digest="sha256:fraud-v3-rebuilt")),
    allowed("labeler-feedback", "feedback-by-labelers", at_work(feedback_doc)),
    denied(
        "serving-feedback",
        "feedback-by-labelers",
        at_work(feedback_doc, principal="svc-checkout", source="checkout-api"),
        DEFAULT_DENY,
    ),
    # stable/training
    allowed("ml-engineer-ingest", "ingest-by-data-roles", at_work(training_doc, action="ingest")),
    allowed(
        "data-engineer-ingest",
        "ingest-by-data-roles",
        at_work(training_doc, action="ingest", principal="carol"),
    ),
    denied(
        "analyst-ingest",
        "ingest-by-data-roles",
        at_work(training_doc, action="ingest", principal="bob"),
        DEFAULT_DENY,
    ),
    *[
        allowed(f"ml-engineer-{a}", "training-by-ml-engineers", at_work(training_doc, action=a))
        for a in ("train", "evaluate", "register")
    ],
    denied(
        "release-manager-train", "training-by-ml-engineers", at_work(training_doc, **RELEASE), DEFAULT_DENY
    ),
    denied(
        "contractor-train",
        "training-by-ml-engineers",
        at_work(training_doc, principal="mallory"),
        DEFAULT_DENY,
    ),
    allowed("ml-engineer-fine-tune", FINE_TUNE, at_work(training_doc, action="fine_tune")),
    denied(
        "contractor-fine-tune",
        FINE_TUNE,
        at_work(training_doc, action="fine_tune", principal="mallory"),
        DEFAULT_DENY,
    ),
    allowed("fine-tune-approved", FINE_TUNE_APPROVAL, at_work(training_doc, action="fine_tune"), FINE_TUNE),
    denied(
        "fine-tune-unapproved", FINE_TUNE_APPROVAL, at_work(training_doc, action="fine_tune", approved=False)
    ),
    denied(
        "contractor-fine-tune-unapproved",
        FINE_TUNE_APPROVAL,
        at_work(training_doc, action="fine_tune", approved=False, principal="mallory"),
    ),
    allowed("approved-dataset", DATASET, at_work(training_doc), "training-by-ml-engineers"),
    allowed(
        "evaluate-on-unapproved-dataset",
        DATASET,
        at_work(training_doc, action="evaluate", dataset_id=UNAPPROVED_DATASET),
        "training-by-ml-engineers",
    ),
    denied("train-on-unapproved-dataset", DATASET, at_work(training_doc, dataset_id=UNAPPROVED_DATASET)),
    denied(
        "fine-tune-on-unregistered-dataset",
        DATASET,
        at_work(training_doc, action="fine_tune", dataset_id="scraped-forum"),
        DATASET,
        UNKNOWN_DATASET,
    ),
    allowed(
        "pii-train-with-approval",
        PII,
        at_work(training_doc, dataset_id=PII_DATASET, dataset_digest=PII_DATASET_DIGEST),
        "training-by-ml-engineers",
    ),
    denied(
        "pii-train-without-approval",
        PII,
        at_work(training_doc, approved=False, dataset_id=PII_DATASET, dataset_digest=PII_DATASET_DIGEST),
    ),
    denied(
        "pii-ingest-without-approval",
        PII,
        at_work(training_doc, action="ingest", approved=False, principal="carol", dataset_id=PII_DATASET),
    ),
    allowed("release-deploy", DEPLOY, at_work(training_doc, action="deploy", **RELEASE)),
    allowed("release-rollback", DEPLOY, at_work(training_doc, action="rollback", **RELEASE)),
    allowed(
        "other-release-manager-deploy",
        DEPLOY,
        at_work(training_doc, action="deploy", principal="ravi", roles=("release-manager",)),
    ),
    denied("ml-engineer-deploy", DEPLOY, at_work(training_doc, action="deploy"), DEFAULT_DENY),
    denied("ml-engineer-rollback", DEPLOY, at_work(training_doc, action="rollback"), DEFAULT_DENY),
    allowed("deploy-approved", DEPLOY_APPROVAL, at_work(training_doc, action="deploy", **RELEASE), DEPLOY),
    denied(
        "deploy-unapproved",
        DEPLOY_APPROVAL,
        at_work(training_doc, action="deploy", approved=False, **RELEASE),
    ),
    denied(
        "rollback-unapproved",
        DEPLOY_APPROVAL,
        at_work(training_doc, action="rollback", approved=False, **RELEASE),
    ),
    # incubating/change-windows
    allowed("deploy-in-hours", OUTSIDE, at_work(training_doc, action="deploy", **RELEASE), DEPLOY),
    denied("deploy-at-night", OUTSIDE, lambda: training_doc(action="deploy", ts=OFF_HOURS_TS, **RELEASE)),
    denied(
        "rollback-on-saturday", OUTSIDE, lambda: training_doc(action="rollback", ts=WEEKEND_TS, **RELEASE)
    ),
    allowed(
        "deploy-registered-artifact",
        DEPLOY_ARTIFACT,
        at_work(training_doc, action="deploy", **RELEASE),
        DEPLOY,
    ),
    allowed(
        "rollback-to-an-older-artifact",
        DEPLOY_ARTIFACT,
        at_work(training_doc, action="rollback", artifact_digest="sha256:fraud-v3-previous", **RELEASE),
        DEPLOY,
    ),
    denied(
        "deploy-unregistered-artifact",
        DEPLOY_ARTIFACT,
        at_work(training_doc, action="deploy", artifact_digest="sha256:fraud-v3-hotfix", **RELEASE),
    ),
    # stable/deploy: credit-v2's thresholds are auc >= 0.9 and a parity difference <= 0.1
    allowed(
        "deploy-meeting-thresholds",
        EVALUATION,
        at_work(training_doc, action="deploy", model_id="credit-v2", metrics=FAIR_AND_GOOD, **RELEASE),
        DEPLOY,
    ),
    denied(
        "deploy-below-auc",
        EVALUATION,
        at_work(
            training_doc,
            action="deploy",
            model_id="credit-v2",
            metrics={**FAIR_AND_GOOD, "auc": 0.8},
            **RELEASE,
        ),
    ),
    denied(
        "register-without-metrics",
        EVALUATION,
        at_work(training_doc, action="register", model_id="credit-v2", metrics={}),
        EVALUATION,
        FAIRNESS,
    ),
    allowed(
        "register-fair-model",
        FAIRNESS,
        at_work(training_doc, action="register", model_id="credit-v2", metrics=FAIR_AND_GOOD),
        "training-by-ml-engineers",
    ),
    denied(
        "deploy-beyond-parity",
        FAIRNESS,
        at_work(
            training_doc,
            action="deploy",
            model_id="credit-v2",
            metrics={**FAIR_AND_GOOD, "demographic_parity_difference": 0.2},
            **RELEASE,
        ),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_pack_decisions(engine: PolicyEngine, case: Case) -> None:
    decision = decide(engine, case.build(), case.verdict)
    assert deciding(decision) == (case.allowed, sorted(case.ids))


INLINE_ONLY = {"delegates-act-on-behalf"}
"""Policies of actions only the decision API asks (no event carries them): their cases are
in their suite.yaml and tests/unit/api."""


def test_every_policy_has_an_allowed_and_a_denied_case(bundle: PolicyBundle) -> None:
    for policy in [p for p in bundle.policies if p.id not in INLINE_ONLY]:
        mine = [c for c in CASES if c.policy == policy.id]
        assert any(c.allowed for c in mine), f"{policy.id} has no allowed case"
        assert any(not c.allowed for c in mine), f"{policy.id} has no denied case"
        # and the policy really decides its cases: permits allow, forbids deny
        decisive = [c for c in mine if c.allowed == (policy.effect == "permit")]
        assert any(policy.id in c.ids for c in decisive), f"{policy.id} never decides"
    assert {c.policy for c in CASES} == {p.id for p in bundle.policies} - INLINE_ONLY


def test_roles_claimed_by_the_event_are_ignored(engine: PolicyEngine) -> None:
    """mallory claims every role; the inventory says contractor, so she gets nothing."""
    claims = ("admin", "analyst", "ml-engineer", "release-manager")
    document = access_doc(principal="mallory", roles=claims, ts=BUSINESS_TS)
    event = event_of(document)
    assert request_for(event, OK, engine.inventory).roles == ("contractor",)
    assert deciding(decide(engine, document)) == (False, [DEFAULT_DENY])
    stranger = access_doc(principal="eve", roles=("analyst",), ts=BUSINESS_TS)
    assert deciding(decide(engine, stranger)) == (False, [DEFAULT_DENY])


def test_inventory_roles_count_without_any_claim(engine: PolicyEngine) -> None:
    document = access_doc(principal="bob", roles=(), ts=BUSINESS_TS)
    assert deciding(decide(engine, document)) == (True, ["read-by-analysts"])


def _token(*roles: str, mfa: bool = False, ok: bool = True) -> TokenResult:
    return TokenResult(ok, "ok" if ok else "token_expired", roles, mfa)


def test_verified_token_roles_count(engine: PolicyEngine) -> None:
    dave = access_doc(principal="dave", roles=(), ts=BUSINESS_TS)  # not in the inventory
    with_token = Verdict(True, "ok", "k", _token("analyst"))
    assert deciding(decide(engine, dave, with_token)) == (True, ["read-by-analysts"])
    event = event_of(access_doc(principal="bob"))
    both = request_for(event, Verdict(True, "ok", "k", _token("data-engineer")), engine.inventory)
    assert both.roles == ("analyst", "data-engineer")


def test_failed_token_roles_do_not_count(engine: PolicyEngine) -> None:
    dave = access_doc(principal="dave", ts=BUSINESS_TS)
    expired = Verdict(True, "ok", "k", _token("analyst", ok=False))
    assert deciding(decide(engine, dave, expired)) == (False, [DEFAULT_DENY])


def test_unverified_events_have_no_roles(inventory: Inventory) -> None:
    event = event_of(access_doc(principal="bob", roles=("analyst", "admin")))
    assert request_for(event, OK, inventory).roles == ("analyst",)
    for verdict in (
        FORGED,
        Verdict(False, "unsigned"),
        Verdict(False, "replay", "k", _token("analyst")),
        Verdict(False, "stale", "k", _token("admin")),
    ):
        assert request_for(event, verdict, inventory).roles == ()


def test_token_mfa_decides_exports(engine: PolicyEngine) -> None:
    export = access_doc(action="export", mfa=False, ts=BUSINESS_TS)
    assert deciding(decide(engine, export, Verdict(True, "ok", "k", _token(mfa=True)))) == (
        True,
        ["export-by-analysts"],
    )
    claimed = access_doc(action="export", mfa=True, ts=BUSINESS_TS)
    assert deciding(decide(engine, claimed, Verdict(True, "ok", "k", _token(mfa=False)))) == (
        False,
        ["export-requires-mfa"],
    )


@pytest.mark.parametrize(
    "builder",
    [
        at_work(access_doc, action="read"),
        at_work(access_doc, action="export", mfa=True),
        at_work(inference_doc),
        at_work(feedback_doc),
        at_work(training_doc, action="deploy", **RELEASE),
    ],
)
def test_unverified_events_are_denied_by_zero_trust(engine: PolicyEngine, builder: Any) -> None:
    document = builder()
    assert decide(engine, document).allowed  # the same event, verified, is allowed
    assert deciding(decide(engine, document, FORGED)) == (False, [ZT])


def test_zero_trust_forbid_overrides_a_matching_permit(engine: PolicyEngine) -> None:
    # even if the roles were (wrongly) kept, an unverified request is denied by the forbid
    request = AuthzRequest("User", "bob", ("analyst",), "read", "Dataset", "d", complete({"verified": False}))
    assert engine.decide_many([request]) == [Decision(False, (ZT,))]


def test_request_shape(inventory: Inventory) -> None:
    request = request_for(event_of(inference_doc()), OK, inventory)
    assert (request.principal_type, request.principal_id, request.roles) == (
        "Service",
        "svc-checkout",
        ("inference-client",),
    )
    assert (request.action, request.resource_type, request.resource_id) == ("infer", "Model", "fraud-v3")
    assert [name for name, _ in request.facts] == list(FACT_NAMES)
    access = request_for(event_of(access_doc()), OK, inventory)
    assert (access.principal_type, access.resource_type) == ("User", "Dataset")


def test_requests_for_identical_events_are_equal_and_hashable(inventory: Inventory) -> None:
    a = event_of(access_doc(event_id="e1", ts=BUSINESS_TS))
    b = event_of(access_doc(event_id="e2", ts=BUSINESS_TS))
    assert request_for(a, OK, inventory) == request_for(b, OK, inventory)
    assert (
        len({request_for(a, OK, inventory), request_for(b, OK, inventory), request_for(a, FORGED, inventory)})
        == 2
    )


ODD_IDS = ['quote"d', "back\\slash", "o'neil", "zoë", "Dana@Example.COM", "00u1AbCd"]
"""Canonical principal ids with characters naive quoting would trip on (any case and script)."""

NON_CANONICAL_IDS = ["tab\there", "line\nbreak", "nbsp\u00a0id", "j d", " bob", "bob\u202e"]


@pytest.fixture(scope="module")
def odd_engine(bundle: PolicyBundle) -> PolicyEngine:
    principals = [{"id": p, "kind": "user", "roles": ["analyst"]} for p in ODD_IDS]
    return PolicyEngine(bundle, build_inventory(with_principals(*principals)))


@pytest.mark.parametrize("principal", ODD_IDS)
def test_principal_ids_are_matched_literally(odd_engine: PolicyEngine, principal: str) -> None:
    """An analyst is an analyst whatever characters their (canonical) id contains."""
    decision = decide(odd_engine, access_doc(principal=principal, ts=BUSINESS_TS))
    assert decision == Decision(True, ("read-by-analysts",)), decision.errors


@pytest.mark.parametrize("principal", NON_CANONICAL_IDS)
def test_non_canonical_principal_ids_are_denied_as_such(engine: PolicyEngine, principal: str) -> None:
    decision = decide(engine, access_doc(principal=principal, ts=BUSINESS_TS))
    assert not decision.allowed
    assert CANONICAL in decision.policy_ids


@pytest.mark.parametrize("principal", NON_CANONICAL_IDS)
def test_the_inventory_refuses_non_canonical_ids(principal: str) -> None:
    with pytest.raises(InventoryError, match="not canonical"):
        build_inventory(with_principals({"id": principal, "kind": "user", "roles": ["analyst"]}))


def test_resource_ids_are_matched_literally(bundle: PolicyBundle) -> None:
    data = inventory_data()
    data["datasets"].append({"id": "o'reilly-orders", "classification": "internal", "approved": True})
    engine = PolicyEngine(bundle, build_inventory(data))
    resource = {"kind": "dataset", "id": "o'reilly-orders"}
    decision = decide(engine, access_doc(resource=resource, ts=BUSINESS_TS))
    assert decision == Decision(True, ("read-by-analysts",)), decision.errors


def test_principal_id_cannot_inject_another_entity(engine: PolicyEngine) -> None:
    # a crafted id that would read as a different uid if quoting were naive
    principal = 'x",Role::"analyst'
    decision = decide(engine, access_doc(principal=principal, roles=("analyst",), ts=BUSINESS_TS))
    assert not decision.allowed


# --- the pack's layout and metadata -------------------------------------------------------------


def test_pack_layout(bundle: PolicyBundle) -> None:
    on_disk = {p.relative_to(PACK_DIR).as_posix() for p in PACK_DIR.glob("*/*/policy.cedar")}
    assert {p.file for p in bundle.policies} == on_disk
    assert all(f.split("/")[0] in FULL for f in on_disk)
    for policy in bundle.policies:
        assert policy.maturity == policy.file.split("/")[0]


def test_pack_metadata(bundle: PolicyBundle) -> None:
    by_id = {p.id: p for p in bundle.policies}
    assert len(by_id) == len(bundle.policies)
    zt = by_id[ZT]
    assert (zt.effect, zt.file, zt.maturity, zt.severity) == (
        "forbid",
        "stable/zero-trust/policy.cedar",
        "stable",
        "high",
    )
    assert by_id[OUTSIDE].maturity == "incubating"
    assert by_id[DEPLOY_APPROVAL].severity == "critical"
    assert by_id["read-by-analysts"].title == "Analysts may read and sign in"
    catalog = load_catalog()
    for policy in bundle.policies:
        assert policy.runbook.startswith("https://"), policy.id
        assert policy.controls, policy.id
        assert set(policy.controls) <= set(catalog.controls), policy.id
        # the line points at the policy's @id annotation
        line = (PACK_DIR / policy.file).read_text().splitlines()[policy.line - 1]
        assert f'@id("{policy.id}")' in line


def test_every_framework_is_covered_by_the_pack(bundle: PolicyBundle) -> None:
    frameworks = {c.split(":")[0] for p in bundle.policies for c in p.controls}
    assert frameworks == set(load_catalog().frameworks)


@pytest.mark.parametrize("framework", ["sr-11-7", "hipaa-security"])
def test_every_sector_control_is_evidenced_by_a_policy_or_a_detector(
    bundle: PolicyBundle, framework: str
) -> None:
    from detectors.findings import controls_by_rule
    from policies.report import FRAMEWORKS

    assert framework in FRAMEWORKS, "vigil controls report offers it"
    by_policies = {c for p in bundle.policies for c in p.controls}
    by_detectors = {c for controls in controls_by_rule().values() for c in controls}
    unmapped = set(load_catalog().of(framework)) - by_policies - by_detectors
    assert not unmapped, f"{framework} controls nothing evidences: {sorted(unmapped)}"


def test_bundled_pack_validates_against_its_schema(bundle: PolicyBundle) -> None:
    assert validate_bundle(bundle) == []


# --- maturities ------------------------------------------------------------------------------------


def test_stable_is_the_default_maturity(stable_bundle: PolicyBundle, bundle: PolicyBundle) -> None:
    assert {p.maturity for p in stable_bundle.policies} == {"stable"}
    assert {p.maturity for p in bundle.policies} == {"stable", "incubating"}
    assert {p.id for p in stable_bundle.policies} < {p.id for p in bundle.policies}
    assert stable_bundle.revision != bundle.revision


def test_incubating_only(bundle: PolicyBundle) -> None:
    incubating = load_bundle(maturities=("incubating",))
    assert {p.id for p in incubating.policies} == {OUTSIDE}


def test_unknown_maturity() -> None:
    with pytest.raises(BundleError, match="sandbox"):
        load_bundle(maturities=("stable", "sandbox"))


def test_incubating_policies_only_apply_when_loaded(
    stable_bundle: PolicyBundle, inventory: Inventory
) -> None:
    night_deploy = training_doc(action="deploy", ts=OFF_HOURS_TS, **RELEASE)
    stable = PolicyEngine(stable_bundle, inventory)
    assert deciding(decide(stable, night_deploy)) == (True, [DEPLOY])
    full = PolicyEngine(load_bundle(maturities=FULL), inventory)
    assert deciding(decide(full, night_deploy)) == (False, [OUTSIDE])


# --- bundle loading ---------------------------------------------------------------------------------


def _copy_pack(tmp_path: Path) -> Path:
    target = tmp_path / "pack"
    for name in FULL:
        shutil.copytree(PACK_DIR / name, target / name)
    shutil.copy(PACK_DIR / SCHEMA_FILE, target / SCHEMA_FILE)
    return target


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def test_revision_is_stable_for_the_same_content(tmp_path: Path, bundle: PolicyBundle) -> None:
    pack = _copy_pack(tmp_path)
    first, second = load_bundle(pack, FULL), load_bundle(pack, FULL)
    assert first.revision == second.revision == bundle.revision
    assert len(bundle.revision) == 16
    int(bundle.revision, 16)


def test_revision_changes_when_a_policy_changes(tmp_path: Path, bundle: PolicyBundle) -> None:
    pack = _copy_pack(tmp_path)
    _edit(pack / "stable/access/policy.cedar", '@severity("high")', '@severity("critical")')
    changed = load_bundle(pack, FULL)
    assert changed.revision != bundle.revision
    assert {p.id: p.severity for p in changed.policies}["export-requires-mfa"] == "critical"


def test_revision_changes_when_the_schema_changes(tmp_path: Path, bundle: PolicyBundle) -> None:
    pack = _copy_pack(tmp_path)
    _edit(pack / SCHEMA_FILE, "entity Endpoint;", "entity Endpoint;\nentity Notebook;")
    assert load_bundle(pack, FULL).revision != bundle.revision


def test_bundle_without_a_schema_uses_the_packaged_one(tmp_path: Path, bundle: PolicyBundle) -> None:
    pack = _copy_pack(tmp_path)
    (pack / SCHEMA_FILE).unlink()
    without = load_bundle(pack, FULL)
    assert without.schema == bundle.schema
    assert without.revision == bundle.revision


def test_revision_changes_for_a_comment_only_edit(tmp_path: Path, bundle: PolicyBundle) -> None:
    pack = _copy_pack(tmp_path)
    path = pack / "stable/inference/policy.cedar"
    path.write_text(path.read_text() + "\n// reviewed 2026-03\n")
    assert load_bundle(pack, FULL).revision != bundle.revision


def test_revision_changes_when_a_family_is_renamed(tmp_path: Path, bundle: PolicyBundle) -> None:
    pack = _copy_pack(tmp_path)
    (pack / "stable/access").rename(pack / "stable/data-access")
    renamed = load_bundle(pack, FULL)
    assert renamed.revision != bundle.revision
    assert {p.id for p in renamed.policies} == {p.id for p in bundle.policies}


def _policy(
    policy_id: str,
    body: str = 'permit (principal, action == Action::"read", resource);',
    *,
    severity: str = "low",
    controls: str = "nist-800-207:tenet-6",
    skip: tuple[str, ...] = (),
) -> str:
    notes = {"id": policy_id, "severity": severity, "title": f"{policy_id} title", "controls": controls}
    lines = [f'@{name}("{value}")' for name, value in notes.items() if name not in skip]
    return "\n".join([*lines, body, ""])


def test_added_policy_family_is_loaded_and_changes_the_revision(
    tmp_path: Path, bundle: PolicyBundle, inventory: Inventory
) -> None:
    pack = _copy_pack(tmp_path)
    (pack / "stable/audit").mkdir()
    (pack / "stable/audit/policy.cedar").write_text(
        _policy("auditors-read", 'permit (principal in Role::"auditor", action == Action::"read", resource);')
    )
    extended = load_bundle(pack, FULL)
    assert extended.revision != bundle.revision
    auditors = inventory_data()
    auditors["principals"].append({"id": "olga", "kind": "user", "roles": ["auditor"]})
    engine = PolicyEngine(extended, build_inventory(auditors))
    assert deciding(decide(engine, access_doc(principal="olga", ts=BUSINESS_TS))) == (True, ["auditors-read"])
    # positions still map back to the right ids after the new file is merged in
    export = access_doc(action="export", mfa=True, ts=BUSINESS_TS)
    assert deciding(decide(engine, export)) == (True, ["export-by-analysts"])
    assert deciding(decide(engine, training_doc(action="fine_tune", ts=BUSINESS_TS))) == (
        True,
        [FINE_TUNE],
    )


def _write_pack(tmp_path: Path, files: dict[str, str]) -> Path:
    pack = tmp_path / "custom"
    for name, text in files.items():
        (pack / name).parent.mkdir(parents=True, exist_ok=True)
        (pack / name).write_text(text)
    return pack


def _bundle_error(pack: Path, maturities: tuple[str, ...] = ("stable",)) -> str:
    with pytest.raises(BundleError) as info:
        load_bundle(pack, maturities)
    return str(info.value)


GOOD = _policy("good")
HEADER = "// a family of policies\n\n"


@pytest.mark.parametrize("missing", ["severity", "title", "controls"])
def test_missing_annotation_names_file_and_line(tmp_path: Path, missing: str) -> None:
    text = (
        HEADER
        + GOOD
        + "\n"
        + _policy("second", 'permit (principal, action == Action::"write", resource);', skip=(missing,))
    )
    pack = _write_pack(tmp_path, {"stable/ops/policy.cedar": text})
    line = text.splitlines().index('@id("second")') + 1
    message = _bundle_error(pack)
    assert message.startswith(f"stable/ops/policy.cedar:{line}: ")
    assert f"'second' lacks @{missing}" in message


def test_policy_without_id_names_file_and_line(tmp_path: Path) -> None:
    nameless = 'permit (principal, action == Action::"write", resource);\n'
    text = HEADER + GOOD + "\n" + nameless
    pack = _write_pack(tmp_path, {"stable/ops/policy.cedar": text})
    line = text.splitlines().index(nameless.strip()) + 1
    message = _bundle_error(pack)
    assert "@id" in message
    assert message.startswith(f"stable/ops/policy.cedar:{line}: ")


def test_unknown_control_names_file_and_line(tmp_path: Path) -> None:
    text = HEADER + _policy("bad-controls", controls="nist-800-207:tenet-6, eu-ai-act:art-999")
    pack = _write_pack(tmp_path, {"stable/ops/policy.cedar": text})
    message = _bundle_error(pack)
    assert message.startswith("stable/ops/policy.cedar:3: ")
    assert "eu-ai-act:art-999" in message
    assert "tenet-6'" not in message  # only the unknown one is named


def test_empty_controls_are_refused(tmp_path: Path) -> None:
    pack = _write_pack(tmp_path, {"stable/ops/policy.cedar": _policy("no-controls", controls=" , ")})
    assert _bundle_error(pack).startswith("stable/ops/policy.cedar:1: ")


def test_unknown_severity_names_file_and_line(tmp_path: Path) -> None:
    pack = _write_pack(tmp_path, {"stable/ops/policy.cedar": HEADER + _policy("loud", severity="urgent")})
    message = _bundle_error(pack)
    assert message.startswith("stable/ops/policy.cedar:3: ")
    assert "urgent" in message


def test_duplicate_id_across_files_names_both(tmp_path: Path) -> None:
    pack = _write_pack(
        tmp_path,
        {"stable/a/policy.cedar": GOOD, "stable/z/policy.cedar": HEADER + GOOD.replace("read", "write")},
    )
    message = _bundle_error(pack)
    assert message.startswith("stable/z/policy.cedar:3: ")
    assert "'good'" in message
    assert "stable/a/policy.cedar" in message


def test_duplicate_id_across_maturities(tmp_path: Path) -> None:
    pack = _write_pack(tmp_path, {"stable/a/policy.cedar": GOOD, "incubating/a/policy.cedar": GOOD})
    assert load_bundle(pack).policies[0].id == "good"  # stable alone is fine
    message = _bundle_error(pack, FULL)
    assert message.startswith("stable/a/policy.cedar:1: ")
    assert "incubating/a/policy.cedar" in message


def test_duplicate_id_within_one_file_names_the_second(tmp_path: Path) -> None:
    text = GOOD + "\n" + GOOD.replace("read", "write")
    pack = _write_pack(tmp_path, {"stable/ops/policy.cedar": text})
    second = [i for i, line in enumerate(text.splitlines(), 1) if line == '@id("good")'][1]
    message = _bundle_error(pack)
    assert message.startswith(f"stable/ops/policy.cedar:{second}: ")
    assert "'good'" in message


def test_parse_error_names_file_and_line(tmp_path: Path) -> None:
    broken = _policy("broken", "permit (principal, action, resource")
    text = HEADER + GOOD + "\n" + broken
    pack = _write_pack(tmp_path, {"stable/a/policy.cedar": GOOD, "stable/b/policy.cedar": text})
    line = text.splitlines().index('@id("broken")') + 1
    assert _bundle_error(pack).startswith(f"stable/b/policy.cedar:{line}: ")


def test_flat_directory_loads_whole(tmp_path: Path) -> None:
    pack = _write_pack(tmp_path, {"a.cedar": GOOD, "more/b.cedar": _policy("other")})
    assert [p.file for p in load_bundle(pack).policies] == ["a.cedar", "more/b.cedar"]


def test_directory_without_policies(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match=r"no \.cedar files"):
        load_bundle(tmp_path)


# --- validation against the schema ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "complaint"),
    [
        ("unless { context.mfa }", "unless { context.mfaa }", "mfaa"),
        ('action == Action::"export"', 'action == Action::"exprot"', "exprot"),
        ('principal in Role::"analyst",', 'principal in Rol::"analyst",', "Rol"),
    ],
    ids=["context-attribute", "action", "entity-type"],
)
def test_validate_catches_typos_with_file_and_line(
    tmp_path: Path, old: str, new: str, complaint: str
) -> None:
    pack = _copy_pack(tmp_path)
    path = pack / "stable/access/policy.cedar"
    _edit(path, old, new)
    edited = load_bundle(pack, FULL)
    problems = validate_bundle(edited)
    assert problems, "the typo went unnoticed"
    assert any(complaint in p for p in problems), problems
    # each problem points at the @id line of the policy it names
    where = {f"{p.file}:{p.line}: ": f"(@id {p.id})" for p in edited.policies}
    for problem in problems:
        prefix = next((w for w in where if problem.startswith(w)), None)
        assert prefix is not None, problem
        assert problem.endswith(where[prefix]), problem
        assert prefix.startswith("stable/access/policy.cedar:"), problem


def test_validate_names_the_policy_with_the_typo(tmp_path: Path) -> None:
    pack = _copy_pack(tmp_path)
    _edit(pack / "stable/access/policy.cedar", "unless { context.mfa }", "unless { context.mfaa }")
    edited = load_bundle(pack, FULL)
    [problem] = validate_bundle(edited)
    info = edited.info("export-requires-mfa")
    assert info is not None
    assert problem.startswith(f"stable/access/policy.cedar:{info.line}: ")
    assert problem.endswith("(@id export-requires-mfa)")


def test_validate_uses_the_bundles_own_schema(tmp_path: Path) -> None:
    pack = _copy_pack(tmp_path)
    _edit(pack / SCHEMA_FILE, "  outcome: String,\n", "")
    problems = validate_bundle(load_bundle(pack, FULL))
    assert problems == []  # no policy reads `outcome`
    _edit(pack / SCHEMA_FILE, "  mfa: Bool,\n", "")
    problems = validate_bundle(load_bundle(pack, FULL))
    assert any("export-requires-mfa" in p and "mfa" in p for p in problems), problems


# --- the engine ----------------------------------------------------------------------------------


def _request(
    principal: str = "bob", roles: tuple[str, ...] = ("analyst",), action: str = "read", verified: bool = True
) -> AuthzRequest:
    return AuthzRequest(
        "User", principal, roles, action, "Dataset", "transactions", complete({"verified": verified})
    )


def test_identical_requests_in_a_batch_are_evaluated_once(engine: PolicyEngine) -> None:
    request = _request()
    decisions = engine.decide_many([request, request, _request()])
    assert decisions == [Decision(True, ("read-by-analysts",))] * 3
    assert engine.evaluated == 1
    assert engine.cache_hits == 2


def test_decisions_are_cached_across_batches(engine: PolicyEngine) -> None:
    engine.decide_many([_request()])
    assert engine.decide_many([_request(), _request()]) == [Decision(True, ("read-by-analysts",))] * 2
    assert engine.evaluated == 1
    engine.decide_many([_request(action="write")])
    assert engine.evaluated == 2


def test_empty_batch(engine: PolicyEngine) -> None:
    assert engine.decide_many([]) == []
    assert engine.evaluated == 0


@pytest.mark.parametrize("order", ["roles-first", "roles-last"])
def test_same_principal_with_different_roles_in_one_batch(engine: PolicyEngine, order: str) -> None:
    analyst = _request(roles=("analyst",))
    nobody = _request(roles=())
    engineer = _request(roles=("data-engineer",), action="write")
    analyst_write = _request(roles=("analyst",), action="write")
    batch = [analyst, nobody, engineer, analyst_write]
    if order == "roles-last":
        batch.reverse()
    expected = {
        analyst: Decision(True, ("read-by-analysts",)),
        nobody: Decision(False, (DEFAULT_DENY,)),
        engineer: Decision(True, ("write-by-data-engineers",)),
        analyst_write: Decision(False, (DEFAULT_DENY,)),
    }
    assert engine.decide_many(batch) == [expected[r] for r in batch]
    assert engine.evaluated == 4


def test_many_principals_in_one_batch(engine: PolicyEngine) -> None:
    batch = [_request(principal=f"user-{i}", roles=("analyst",) if i % 2 else ()) for i in range(50)]
    decisions = engine.decide_many(batch)
    assert [d.allowed for d in decisions] == [bool(i % 2) for i in range(50)]


def test_cache_overflow_keeps_decisions_correct(bundle: PolicyBundle) -> None:
    engine = PolicyEngine(bundle, cache_size=3)
    for round_ in range(3):
        batch = [_request(principal=f"u{i}", roles=("analyst",) if i % 2 else ()) for i in range(5)]
        assert [d.allowed for d in engine.decide_many(batch)] == [False, True, False, True, False], round_


def test_principals_and_resources_of_one_shape_share_one_evaluation(engine: PolicyEngine) -> None:
    """No policy of the pack names an entity, so ids cannot change a decision."""
    assert not engine.ids_matter
    batch = [
        AuthzRequest(
            "User", f"user-{i}", ("analyst",), "read", "Dataset", f"ds-{i}", complete({"verified": True})
        )
        for i in range(40)
    ]
    assert engine.decide_many(batch) == [Decision(True, ("read-by-analysts",))] * 40
    assert engine.evaluated == 1
    assert engine.decide_many([_request(principal="someone-new")]) == [Decision(True, ("read-by-analysts",))]
    assert engine.evaluated == 1


def test_a_policy_naming_a_principal_keys_decisions_by_id(tmp_path: Path) -> None:
    pack = _copy_pack(tmp_path)
    (pack / "stable" / "access" / "blocked.cedar").write_text(
        '@id("mallory-blocked")\n@severity("high")\n@title("Mallory is blocked")\n'
        '@controls("nist-800-207:tenet-6")\n'
        'forbid (principal == User::"mallory", action, resource);\n'
    )
    engine = PolicyEngine(load_bundle(pack, FULL))
    assert engine.ids_matter
    bob, mallory = _request(principal="bob"), _request(principal="mallory")
    assert [d.allowed for d in engine.decide_many([bob, mallory])] == [True, False]
    assert [d.allowed for d in engine.decide_many([mallory, bob])] == [False, True]


def test_a_full_cache_forgets_the_least_recently_used_decision(bundle: PolicyBundle) -> None:
    engine = PolicyEngine(bundle, cache_size=2)
    read, write, login = _request(), _request(action="write"), _request(action="login")
    engine.decide_many([read])
    engine.decide_many([write])
    engine.decide_many([read])  # read is now the most recently used
    engine.decide_many([login])  # evicts write
    assert engine.cached == 2
    evaluated = engine.evaluated
    engine.decide_many([read, login])
    assert engine.evaluated == evaluated
    engine.decide_many([write])
    assert engine.evaluated == evaluated + 1


def test_cache_size_zero_decides_every_batch_afresh(bundle: PolicyBundle) -> None:
    engine = PolicyEngine(bundle, cache_size=0)
    for _ in range(2):
        assert engine.decide_many([_request(), _request()]) == [Decision(True, ("read-by-analysts",))] * 2
    assert engine.evaluated == 2
    assert engine.cached == 0


def test_deciding_ids_come_in_a_fixed_order(bundle: PolicyBundle) -> None:
    """The same request must always name its policies in the same order (bundle order or
    by id): finding ids and alert fingerprints are built from them, and a redelivered
    event must reproduce them."""
    position = {info.id: n for n, info in enumerate(bundle.policies)}
    unverified = AuthzRequest("Service", "s", (), "infer", "Model", "ghost", complete({"verified": False}))
    seen = set()
    for _ in range(20):
        [decision] = PolicyEngine(bundle).decide_many([unverified])
        seen.add(decision.policy_ids)
    assert len(seen) == 1, seen
    [ids] = seen
    assert set(ids) == {ZT, APPROVED_MODEL, ARTIFACT}
    assert list(ids) in (sorted(ids, key=position.__getitem__), sorted(ids))


def test_revision_covers_bundle_and_inventory(bundle: PolicyBundle, inventory: Inventory) -> None:
    same = PolicyEngine(bundle, inventory).revision
    assert PolicyEngine(bundle, build_inventory()).revision == same
    changed = inventory_data()
    changed["models"][0]["status"] = "quarantined"
    assert PolicyEngine(bundle, build_inventory(changed)).revision != same
    assert PolicyEngine(load_bundle(), inventory).revision != same
    assert PolicyEngine(bundle).revision not in {same, bundle.revision}
    assert len(same) == 16


def test_engine_is_its_own_current_engine(engine: PolicyEngine) -> None:
    assert engine.current() is engine


def test_engine_without_inventory_grants_nothing(bundle: PolicyBundle) -> None:
    engine = PolicyEngine(bundle)
    assert deciding(decide(engine, access_doc(ts=BUSINESS_TS))) == (False, [UNKNOWN_DATASET])


def test_controls_of_a_decision(engine: PolicyEngine, bundle: PolicyBundle) -> None:
    def controls(policy_id: str) -> list[str]:
        info = bundle.info(policy_id)
        assert info is not None
        return list(info.controls)

    assert engine.controls_of(Decision(True, ("read-by-analysts",))) == controls("read-by-analysts")
    zero_trust = ["nist-800-207:tenet-6", "nist-800-207:tenet-4"]
    assert engine.controls_of(Decision(False, (DEFAULT_DENY,))) == zero_trust
    assert engine.controls_of(Decision(False, (EVALUATION_ERROR,))) == zero_trust
    both = engine.controls_of(Decision(False, (ZT, "export-requires-mfa")))
    assert both == list(dict.fromkeys(controls(ZT) + controls("export-requires-mfa")))
    assert len(both) == len(set(both))


def test_request_the_engine_cannot_evaluate_is_denied_as_evaluation_error(engine: PolicyEngine) -> None:
    # facts missing: the inference forbids cannot read them, and nothing permits
    partial = AuthzRequest("Service", "svc-x", (), "infer", "Model", "m", (("verified", True),))
    [decision] = engine.decide_many([partial])
    assert (decision.allowed, decision.policy_ids) == (False, (EVALUATION_ERROR,))
    assert any("model_status" in e for e in decision.errors)


def test_a_forbid_that_fails_to_evaluate_never_lets_a_permit_through(
    tmp_path: Path, inventory: Inventory
) -> None:
    """An unvalidated typo in a forbid must not open access (fail closed)."""
    pack = _copy_pack(tmp_path)
    _edit(pack / "stable/access/policy.cedar", "unless { context.mfa }", "unless { context.mfaa }")
    engine = PolicyEngine(load_bundle(pack), inventory)
    decision = decide(engine, access_doc(action="export", mfa=False, ts=BUSINESS_TS))
    assert decision.errors
    assert not decision.allowed


def test_one_malformed_request_does_not_decide_the_others(engine: PolicyEngine) -> None:
    good = _request()
    malformed = AuthzRequest("Not A Type", "x", (), "read", "Dataset", "d", complete({"verified": True}))
    decisions = engine.decide_many([good, malformed])
    assert decisions[1].policy_ids == (EVALUATION_ERROR,)
    assert decisions[0] == Decision(True, ("read-by-analysts",))
    assert engine.decide_many([good]) == [Decision(True, ("read-by-analysts",))]
