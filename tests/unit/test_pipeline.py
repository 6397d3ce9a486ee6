"""vigil.pipeline: decode, verify, decide, detect and alert over one batch.

The detect step is a recording stand-in here (``RecordingDetect``), so these tests pin
what the pipeline promises around it (only proven events reach the detectors, an
error in one event rejects only that event) independently of what the detectors
find; ``test_shipped_detectors_*`` runs the real stage once for robustness.
"""

from __future__ import annotations

import base64
import gc
import os
import shutil
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

import vigil.pipeline as pipeline_module
from detectors.stage import DetectStage
from identity.keyring import Keyring, load_keyring
from identity.signing import Ed25519Signer, sign_document
from identity.verify import IdentityVerifier
from policies.bundle import PACK_DIR, SCHEMA_FILE, PolicyBundle, load_bundle
from policies.engine import PolicyEngine
from policies.facts import FACT_NAMES
from policies.inventory import Inventory, load_inventory
from policies.runtime import PolicyRuntime
from schemas.events import Event
from schemas.records import FindingRow
from tests.factories import (
    KEYS,
    QUARANTINED_MODEL,
    TokenIssuer,
    access_doc,
    build_inventory,
    ed25519_entry,
    ed25519_key_pair,
    encode,
    feedback_doc,
    forged,
    inference_doc,
    inventory_data,
    key_entries,
    make_keyring,
    make_token_verifier,
    now_iso,
    signed,
    signed_bytes,
    training_doc,
    write_inventory,
)
from vigil.demo import DemoTraffic, write_demo_inventory, write_demo_keys
from vigil.pipeline import BatchResult, Pipeline, RawMessage

TOPIC = "vigil.events"
RELEASE = {"principal": "rita", "roles": ("release-manager",)}


class RecordingDetect:
    """Stands in for the detect stage: remembers what it was fed, finds nothing."""

    def __init__(self) -> None:
        self.observed: list[tuple[str, str, int, int]] = []

    def observe(
        self,
        event: Event,
        *,
        topic: str = "",
        partition: int = 0,
        offset: int = -1,
        inventory_digest: str | None = None,
    ) -> list[FindingRow]:
        self.observed.append((event.event_id, topic, partition, offset))
        return []

    @property
    def event_ids(self) -> set[str]:
        return {event_id for event_id, *_ in self.observed}


@pytest.fixture(scope="module")
def bundle() -> PolicyBundle:
    return load_bundle()


@pytest.fixture(scope="module")
def inventory() -> Inventory:
    return build_inventory()


@pytest.fixture
def keyring(tmp_path: Path) -> Keyring:
    return make_keyring(tmp_path)


@pytest.fixture
def detect() -> RecordingDetect:
    return RecordingDetect()


@pytest.fixture
def engine(bundle: PolicyBundle, inventory: Inventory) -> PolicyEngine:
    return PolicyEngine(bundle, inventory)


def make_pipeline(
    keyring: Keyring, engine: PolicyEngine | PolicyRuntime, detect: Any = None, **options: Any
) -> Pipeline:
    identity = options.pop("identity", None) or IdentityVerifier(keyring)
    return Pipeline(identity, engine, detect=detect or RecordingDetect(), **options)


@pytest.fixture
def pipeline(keyring: Keyring, engine: PolicyEngine, detect: RecordingDetect) -> Pipeline:
    return make_pipeline(keyring, engine, detect)


def messages(*values: bytes, start: int = 0, timestamp: datetime | None = None) -> list[RawMessage]:
    return [
        RawMessage(value, TOPIC, partition=0, offset=start + i, timestamp=timestamp)
        for i, value in enumerate(values)
    ]


def assert_each_message_once(batch: list[RawMessage], result: BatchResult) -> None:
    places = Counter((r.partition, r.offset) for r in result.events)
    places.update((r.partition, r.offset) for r in result.rejected)
    expected = Counter((m.partition, m.offset) for m in batch)
    assert places == expected, "a message is missing or appears twice across events/rejected"


def by_event(result: BatchResult, event_id: str) -> dict[str, Any]:
    return {
        "event": [r for r in result.events if r.event_id == event_id],
        "decision": [r for r in result.decisions if r.event_id == event_id],
        "findings": [r for r in result.findings if r.event_id == event_id],
        "alerts": [r for r in result.alerts if r.event_id == event_id],
    }


def controls_of(bundle: PolicyBundle, policy_id: str) -> list[str]:
    info = bundle.info(policy_id)
    assert info is not None, policy_id
    return list(info.controls)


# --- every message lands exactly once -------------------------------------------------


def test_every_message_ends_in_exactly_one_place(pipeline: Pipeline) -> None:
    batch = messages(
        signed_bytes(inference_doc()),
        signed_bytes(feedback_doc()),
        signed_bytes(training_doc()),
        signed_bytes(access_doc()),
        encode(forged(inference_doc())),
        encode(access_doc()),  # unsigned
        b'{"event_id": "broken-1", "type": "inference", ',
        orjson.dumps({"event_id": "no-fields", "schema_version": 1, "type": "access"}),
        orjson.dumps({**access_doc(), "type": "telemetry"}),
        signed_bytes(inference_doc()) + b" " * 70_000,
        b"",
        b"[]",
    )
    result = pipeline.process(batch)
    assert_each_message_once(batch, result)
    assert len(result.events) == 6
    assert len(result.decisions) == len(result.events)
    assert Counter(r.code for r in result.rejected) == Counter(
        {"invalid_json": 2, "missing_field": 1, "unknown_type": 1, "oversize": 1, "not_an_object": 1}
    )


def test_empty_batch(pipeline: Pipeline) -> None:
    assert pipeline.process([]) == BatchResult()


def test_ordinary_signed_traffic_raises_nothing(pipeline: Pipeline) -> None:
    batch = messages(
        *(signed_bytes(inference_doc()) for _ in range(20)),
        signed_bytes(inference_doc(model_id="credit-v2", principal="svc-lending", source="lending-api")),
        signed_bytes(feedback_doc()),
        signed_bytes(training_doc(action="fine_tune")),
        signed_bytes(training_doc(action="ingest", principal="carol")),
        signed_bytes(training_doc(action="deploy", **RELEASE)),
        signed_bytes(access_doc(action="export", mfa=True)),
        signed_bytes(access_doc(action="write", principal="carol")),
    )
    result = pipeline.process(batch)
    assert all(r.verified and r.verify_reason == "ok" for r in result.events)
    assert {d.decision for d in result.decisions} == {"allow"}, [
        (d.action, d.policy_ids) for d in result.decisions if d.decision != "allow"
    ]
    assert result.findings == []
    assert result.alerts == []
    assert result.rejected == []


def test_event_row_contents(pipeline: Pipeline) -> None:
    document = signed(
        inference_doc(features={"amount": 12, "merchant_risk": 0.25, "country": "DE", "card_present": True})
    )
    batch = [RawMessage(encode(document), TOPIC, partition=3, offset=77, key=b"fraud-v3")]
    [row] = pipeline.process(batch).events
    assert row.event_id == document["event_id"]
    assert (row.type, row.action, row.model_id, row.source) == (
        "inference",
        "infer",
        "fraud-v3",
        "checkout-api",
    )
    assert row.features == {"amount": 12.0, "merchant_risk": 0.25}  # numbers only, bools excluded
    assert (row.verified, row.verify_reason, row.key_id) == (True, "ok", KEYS["checkout-api"].key_id)
    assert row.token_status == "none"
    assert row.signature == document["signature"]["value"]
    assert orjson.loads(row.payload) == {k: v for k, v in document.items() if k != "signature"}
    assert (row.topic, row.partition, row.offset) == (TOPIC, 3, 77)
    assert row.roles == ["inference-client"]  # what the event claimed, kept as evidence


def test_access_event_model_id_comes_from_a_model_resource(pipeline: Pipeline) -> None:
    on_model = access_doc(resource={"kind": "model", "id": "credit-v2"})
    on_dataset = access_doc()
    rows = pipeline.process(messages(signed_bytes(on_model), signed_bytes(on_dataset))).events
    assert [r.model_id for r in rows] == ["credit-v2", ""]


def test_rejected_row_keeps_the_raw_message(pipeline: Pipeline) -> None:
    raw = b'{"event_id": "broken-1", "type": "inference", '
    batch = [RawMessage(raw, TOPIC, partition=2, offset=9, key=b"fraud-v3")]
    [row] = pipeline.process(batch).rejected
    assert base64.b64decode(row.raw_base64) == raw
    assert (row.size, row.code, row.key, row.partition, row.offset) == (
        len(raw),
        "invalid_json",
        "fraud-v3",
        2,
        9,
    )
    assert "EOF" in row.reason


JWT = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJib2IifQ.c2lnbmF0dXJl"


@pytest.mark.parametrize(
    "raw",
    [
        b'{"event_id": "e1", "type": "inference", "auth": {"scheme": "bearer", "token": "%s"}, '
        % JWT.encode(),
        b'{"type": "nonsense", "auth": {"scheme": "bearer", "token": "%s"}}' % JWT.encode(),
        b'{"auth": {"token": "opaque-api-key-123"}, "note": "and a copy %s here"' % JWT.encode(),
    ],
)
def test_a_rejected_message_keeps_no_bearer_token(pipeline: Pipeline, raw: bytes) -> None:
    """The rejected row (and so the dead letter) keeps the bytes, minus the credential."""
    [row] = pipeline.process([RawMessage(raw, TOPIC, offset=1)]).rejected
    stored = base64.b64decode(row.raw_base64)
    assert JWT.encode() not in stored
    assert b"opaque-api-key-123" not in stored
    assert b"redacted:sha256:" in stored
    assert row.size == len(raw)


def test_rejected_ids_are_stable_for_a_replayed_message(pipeline: Pipeline) -> None:
    batch = messages(b"not json", b"not json either")
    first = pipeline.process(batch).rejected
    second = pipeline.process(batch).rejected
    assert [r.rejected_id for r in first] == [r.rejected_id for r in second]
    assert first[0].rejected_id != first[1].rejected_id


# --- identity ---------------------------------------------------------------------------


def test_forged_event_is_stored_unverified_denied_and_alerted(
    pipeline: Pipeline, bundle: PolicyBundle
) -> None:
    document = forged(inference_doc())
    result = pipeline.process(messages(encode(document)))
    rows = by_event(result, document["event_id"])

    [event] = rows["event"]
    assert (event.verified, event.verify_reason) == (False, "bad_signature")
    [decision] = rows["decision"]
    assert decision.decision == "deny"
    assert decision.policy_ids == ["zt-unverified-denied"]
    assert decision.verified is False
    assert decision.roles == []
    assert decision.controls == controls_of(bundle, "zt-unverified-denied")

    stages = {f.stage: f for f in rows["findings"]}
    assert set(stages) == {"identity", "policy"}
    assert stages["identity"].detector_or_rule == "identity-bad-signature"
    assert stages["identity"].severity == "critical"
    assert "checkout-api" in stages["identity"].message
    identity = orjson.loads(stages["identity"].details)
    assert (identity["reason"], identity["key_id"]) == ("bad_signature", KEYS["checkout-api"].key_id)
    assert "nist-800-207:tenet-6" in identity["controls"]
    assert stages["policy"].detector_or_rule == "zt-unverified-denied"
    assert stages["policy"].severity == "high"
    assert [a.stage for a in rows["alerts"]] == [
        "identity"
    ]  # one incident, one alert: the denial stays a finding


def _ed25519_keyring(tmp_path: Path) -> tuple[Keyring, Ed25519Signer]:
    private, public = ed25519_key_pair()
    entry = ed25519_entry("portal-ed", public, ("data-portal",))
    return make_keyring(tmp_path, [*key_entries(), entry]), Ed25519Signer("portal-ed", private)


@pytest.mark.parametrize(
    ("make", "reason", "severity"),
    [
        (lambda: encode(access_doc()), "unsigned", "high"),
        (lambda: encode(signed(access_doc(), KEYS["labeling"])), "key_not_for_source", "critical"),
        (lambda: encode(sign_document(access_doc(), "retired-2019", b"r" * 32)), "unknown_key", "high"),
        (lambda: encode(forged(access_doc())), "bad_signature", "critical"),
    ],
)
def test_identity_findings_by_reason(pipeline: Pipeline, make: Any, reason: str, severity: str) -> None:
    result = pipeline.process(messages(make()))
    [event] = result.events
    assert event.verify_reason == reason
    [identity] = [f for f in result.findings if f.stage == "identity"]
    assert identity.detector_or_rule == "identity-" + reason.replace("_", "-")
    assert identity.severity == severity
    assert orjson.loads(identity.details)["reason"] == reason


def test_ed25519_events_verify_and_alg_confusion_is_caught(
    tmp_path: Path, engine: PolicyEngine, detect: RecordingDetect
) -> None:
    keyring, signer = _ed25519_keyring(tmp_path)
    pipeline = make_pipeline(keyring, engine, detect)
    genuine = signer.sign(access_doc())
    as_hmac = sign_document(access_doc(), "portal-ed", b"p" * 32)  # HMAC under the Ed25519 key id
    result = pipeline.process(messages(encode(genuine), encode(as_hmac)))
    assert [(e.verified, e.verify_reason, e.key_id) for e in result.events] == [
        (True, "ok", "portal-ed"),
        (False, "alg_mismatch", "portal-ed"),
    ]
    assert [d.decision for d in result.decisions] == ["allow", "deny"]
    [identity] = [f for f in result.findings if f.stage == "identity"]
    assert (identity.detector_or_rule, identity.severity) == ("identity-alg-mismatch", "critical")


def test_key_not_for_principal(tmp_path: Path, engine: PolicyEngine) -> None:
    entries = [
        {**e, "principals": ["svc-*"]} if e["key_id"] == KEYS["data-portal"].key_id else e
        for e in key_entries()
    ]
    pipeline = make_pipeline(make_keyring(tmp_path, entries), engine)
    result = pipeline.process(messages(signed_bytes(access_doc(principal="bob"))))
    assert result.events[0].verify_reason == "key_not_for_principal"
    assert [f.detector_or_rule for f in result.findings if f.stage == "identity"] == [
        "identity-key-not-for-principal"
    ]


def test_unverified_roles_do_not_grant_access(pipeline: Pipeline) -> None:
    document = forged(access_doc(action="export", mfa=True))
    [decision] = pipeline.process(messages(encode(document))).decisions
    assert (decision.decision, decision.roles) == ("deny", [])


def test_claimed_roles_are_ignored(pipeline: Pipeline) -> None:
    document = signed(access_doc(principal="mallory", roles=("analyst", "admin")))
    [decision] = pipeline.process(messages(encode(document))).decisions
    assert (decision.decision, decision.roles, decision.policy_ids) == (
        "deny",
        ["contractor"],
        ["default-deny"],
    )


# --- replay and freshness -------------------------------------------------------------


def test_replayed_event_is_stored_unverified_with_a_finding(
    pipeline: Pipeline, detect: RecordingDetect
) -> None:
    raw = signed_bytes(inference_doc())
    event_id = orjson.loads(raw)["event_id"]
    result = pipeline.process(messages(raw, raw))  # the same bytes at offsets 0 and 1
    assert [(e.offset, e.verified, e.verify_reason) for e in result.events] == [
        (0, True, "ok"),
        (1, False, "replay"),
    ]
    assert [(d.offset, d.decision, d.policy_ids) for d in result.decisions] == [
        (0, "allow", ["inference-by-serving-roles"]),
        (1, "deny", ["zt-unverified-denied"]),
    ]
    identity = [f for f in result.findings if f.stage == "identity"]
    assert [(f.event_id, f.detector_or_rule, f.severity) for f in identity] == [
        (event_id, "identity-replay", "high")
    ]
    assert detect.observed == [(event_id, TOPIC, 0, 0)]  # the copy never reaches the detectors


def test_replay_in_a_later_batch(pipeline: Pipeline) -> None:
    raw = signed_bytes(access_doc())
    assert pipeline.process(messages(raw, start=10)).events[0].verified
    [later] = pipeline.process(messages(raw, start=500)).events
    assert (later.verified, later.verify_reason) == (False, "replay")


def test_redelivery_is_not_a_replay_and_reproduces_the_rows(pipeline: Pipeline) -> None:
    """After a crash the same batch comes again: same rows, so the store dedupes them."""
    batch = messages(
        signed_bytes(access_doc()), signed_bytes(access_doc(action="export", mfa=False)), start=40
    )
    first, second = pipeline.process(batch), pipeline.process(batch)
    assert [(e.verified, e.verify_reason) for e in second.events] == [(True, "ok"), (True, "ok")]
    assert [e._replace(received_at=None) for e in first.events] == [
        e._replace(received_at=None) for e in second.events
    ]
    assert first.decisions == second.decisions
    assert [f.finding_id for f in first.findings] == [f.finding_id for f in second.findings]


@pytest.mark.parametrize(
    ("age", "reason"),
    [
        (timedelta(hours=1), "stale"),
        (timedelta(hours=-1), "stale"),  # from the future
        (timedelta(minutes=1), "ok"),
        (timedelta(minutes=-1), "ok"),
    ],
)
def test_freshness_against_the_message_timestamp(pipeline: Pipeline, age: timedelta, reason: str) -> None:
    arrival = datetime.now(UTC)
    document = signed(access_doc(ts=(arrival - age).isoformat()))
    result = pipeline.process(messages(encode(document), timestamp=arrival))
    [event] = result.events
    assert (event.verified, event.verify_reason) == (reason == "ok", reason)
    identity = [(f.detector_or_rule, f.severity) for f in result.findings if f.stage == "identity"]
    assert identity == ([] if reason == "ok" else [("identity-stale", "medium")])
    if reason != "ok":
        assert result.decisions[0].policy_ids == ["zt-unverified-denied"]


def test_without_a_message_timestamp_there_is_no_freshness_check(pipeline: Pipeline) -> None:
    document = signed(access_doc(ts=now_iso(timedelta(days=-20))))
    [event] = pipeline.process(messages(encode(document), timestamp=None)).events
    assert event.verified


# --- tokens ---------------------------------------------------------------------------


def test_token_roles_decide_and_failed_tokens_are_findings(
    tmp_path: Path, keyring: Keyring, engine: PolicyEngine
) -> None:
    idp = TokenIssuer()
    identity = IdentityVerifier(keyring, tokens=make_token_verifier(tmp_path, idp))
    pipeline = make_pipeline(keyring, engine, identity=identity)
    good = signed(
        access_doc(principal="dave", roles=(), auth={"token": idp.token("dave", roles=["analyst"])})
    )
    expired_token = idp.token("dave", at=datetime.now(UTC) - timedelta(hours=3), roles=["analyst"])
    expired = signed(access_doc(principal="dave", auth={"token": expired_token}))
    result = pipeline.process(messages(encode(good), encode(expired)))
    assert [(e.verified, e.verify_reason, e.token_status) for e in result.events] == [
        (True, "ok", "ok"),
        (False, "token_expired", "token_expired"),
    ]
    assert [(d.decision, d.roles) for d in result.decisions] == [("allow", ["analyst"]), ("deny", [])]
    assert orjson.loads(result.decisions[0].facts)["token_verified"] is True
    identity_findings = [f for f in result.findings if f.stage == "identity"]
    assert [f.detector_or_rule for f in identity_findings] == ["identity-token-expired"]
    assert orjson.loads(identity_findings[0].details)["token"] == "token_expired"


# --- policy -------------------------------------------------------------------------


def test_decisions_carry_the_engine_revision(pipeline: Pipeline, engine: PolicyEngine) -> None:
    batch = messages(signed_bytes(access_doc()), signed_bytes(access_doc(action="export", mfa=False)))
    result = pipeline.process(batch)
    assert [d.bundle_revision for d in result.decisions] == [engine.revision] * 2
    assert engine.revision != engine.bundle.revision  # the inventory is part of it
    [policy] = [f for f in result.findings if f.stage == "policy"]
    assert orjson.loads(policy.details)["bundle_revision"] == engine.revision


def test_decision_row_carries_controls_facts_and_request(pipeline: Pipeline, bundle: PolicyBundle) -> None:
    document = signed(inference_doc(roles=("admin",)))
    batch = [RawMessage(encode(document), TOPIC, partition=2, offset=31)]
    [row] = pipeline.process(batch).decisions
    assert (row.decision, row.policy_ids) == ("allow", ["inference-by-serving-roles"])
    assert row.controls == controls_of(bundle, "inference-by-serving-roles")
    assert (row.principal_type, row.roles, row.resource_type) == ("Service", ["inference-client"], "Model")
    assert (row.topic, row.partition, row.offset) == (TOPIC, 2, 31)
    assert row.errors == []
    facts = orjson.loads(row.facts)
    assert list(facts) == list(FACT_NAMES)
    assert facts["verified"] is True
    assert facts["model_status"] == "approved"
    assert facts["artifact_matches"] is True
    assert facts["principal_known"] is True


def test_default_deny_evidences_the_zero_trust_tenets(pipeline: Pipeline) -> None:
    [row] = pipeline.process(messages(signed_bytes(access_doc(principal="mallory")))).decisions
    assert (row.decision, row.policy_ids) == ("deny", ["default-deny"])
    assert row.controls == ["nist-800-207:tenet-6", "nist-800-207:tenet-4"]


def test_a_bearer_token_is_never_stored(pipeline: Pipeline) -> None:
    document = signed(access_doc(auth={"token": "eyJhbGciOiJFUzI1NiJ9.secret-token.sig"}))
    [row] = pipeline.process(messages(encode(document))).events
    assert "secret-token" not in row.payload
    assert '"token":"redacted:sha256:' in row.payload


def test_export_without_mfa_is_denied_and_alerted(pipeline: Pipeline, bundle: PolicyBundle) -> None:
    without = signed(access_doc(action="export", mfa=False))
    with_mfa = signed(access_doc(action="export", mfa=True))
    result = pipeline.process(messages(encode(without), encode(with_mfa)))
    assert [(d.event_id, d.decision, d.policy_ids) for d in result.decisions] == [
        (without["event_id"], "deny", ["export-requires-mfa"]),
        (with_mfa["event_id"], "allow", ["export-by-analysts"]),
    ]
    assert result.decisions[0].controls == controls_of(bundle, "export-requires-mfa")
    assert orjson.loads(result.decisions[0].facts)["mfa"] is False
    [policy] = result.findings
    assert (policy.event_id, policy.stage, policy.detector_or_rule, policy.severity) == (
        without["event_id"],
        "policy",
        "export-requires-mfa",
        "high",
    )
    assert "Exports need multi-factor authentication" in policy.message
    details = orjson.loads(policy.details)
    assert details["controls"] == controls_of(bundle, "export-requires-mfa")
    assert details["runbooks"] == ["https://runbooks.vigil.example/access/export-mfa"]
    assert [a.event_id for a in result.alerts] == [without["event_id"]]


@pytest.mark.parametrize(
    ("document", "policy", "severity"),
    [
        (lambda: training_doc(action="fine_tune", approved=False), "fine-tune-requires-approval", "high"),
        (lambda: inference_doc(model_id=QUARANTINED_MODEL), "inference-requires-approved-model", "high"),
        (
            lambda: inference_doc(artifact_digest="sha256:rogue-build"),
            "inference-artifact-matches-registry",
            "critical",
        ),
        (lambda: access_doc(principal="mallory"), "default-deny", "medium"),
    ],
)
def test_policy_findings(pipeline: Pipeline, document: Any, policy: str, severity: str) -> None:
    doc = document()
    result = pipeline.process(messages(signed_bytes(doc)))
    assert result.decisions[0].decision == "deny"
    assert [(f.stage, f.detector_or_rule, f.severity, f.principal_id) for f in result.findings] == [
        ("policy", policy, severity, doc["principal"]["id"])
    ]


def test_a_rogue_artifact_of_a_registered_model_is_one_finding(
    keyring: Keyring, engine: PolicyEngine
) -> None:
    """The registry policy and the supply-chain monitor agree by not both speaking:
    for a model whose digest the inventory registers, the policy alone judges."""
    pipeline = make_pipeline(keyring, engine, DetectStage())
    served = [signed_bytes(inference_doc()) for _ in range(20)]
    assert pipeline.process(messages(*served)).findings == []
    result = pipeline.process(messages(signed_bytes(inference_doc(artifact_digest="sha256:rogue-build"))))
    assert [(f.stage, f.detector_or_rule, f.severity) for f in result.findings] == [
        ("policy", "inference-artifact-matches-registry", "critical")
    ]
    assert len(result.alerts) == 1


def test_findings_name_the_resource_and_the_signing_key_the_event_named(pipeline: Pipeline) -> None:
    doc = access_doc(principal="mallory", resource={"kind": "dataset", "id": "ds-payroll"})
    result = pipeline.process(messages(encode(forged(doc))))
    subjects = {(f.stage, f.principal_id, f.resource_kind, f.resource_id, f.key_id) for f in result.findings}
    key = KEYS["data-portal"].key_id
    assert subjects == {
        ("identity", "mallory", "dataset", "ds-payroll", key),
        ("policy", "mallory", "dataset", "ds-payroll", key),
    }
    [alert] = result.alerts  # the deny follows from the forgery: one incident, one alert
    assert (alert.stage, alert.key_id, alert.resource_id) == ("identity", key, "ds-payroll")


def test_finding_ids_are_reproducible_for_a_redelivered_event(
    keyring: Keyring, bundle: PolicyBundle, inventory: Inventory
) -> None:
    """A worker that crashes and restarts re-processes the batch with a fresh pipeline:
    the findings must get the same ids or the store keeps both copies."""
    raw = encode(forged(inference_doc(model_id="ghost-v9")))  # denied by three policies
    ids = set()
    for _ in range(8):
        pipeline = make_pipeline(keyring, PolicyEngine(bundle, inventory))
        ids.add(tuple(sorted(f.finding_id for f in pipeline.process(messages(raw)).findings)))
    assert len(ids) == 1, ids


# --- policies reloaded between batches -------------------------------------------------------


def test_policy_runtime_reload_between_batches(tmp_path: Path, keyring: Keyring) -> None:
    pack = tmp_path / "pack"
    shutil.copytree(PACK_DIR / "stable", pack / "stable")
    shutil.copy(PACK_DIR / SCHEMA_FILE, pack / SCHEMA_FILE)
    inventory_path = write_inventory(tmp_path / "inventory.yaml")
    now = [0.0]
    runtime = PolicyRuntime(pack, inventory_path=inventory_path, check_interval=5, clock=lambda: now[0])
    pipeline = make_pipeline(keyring, runtime)
    before = pipeline.process(messages(signed_bytes(access_doc())))
    assert before.decisions[0].decision == "allow"

    revoked = inventory_data()
    revoked["principals"] = [p for p in revoked["principals"] if p["id"] != "bob"]
    write_inventory(inventory_path, revoked)
    stat = inventory_path.stat()
    os.utime(inventory_path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    now[0] = 10.0
    after = pipeline.process(messages(signed_bytes(access_doc()), start=1))
    assert (after.decisions[0].decision, after.decisions[0].roles) == ("deny", [])
    assert after.decisions[0].bundle_revision != before.decisions[0].bundle_revision
    assert pipeline.engine is runtime.engine


# --- the detect step only ever sees proven events ---------------------------------------------


def test_only_verified_events_reach_the_detectors(pipeline: Pipeline, detect: RecordingDetect) -> None:
    arrival = datetime.now(UTC)
    genuine = signed(inference_doc(ts=now_iso()))
    stale = signed(inference_doc(ts=now_iso(timedelta(hours=-2))))
    batch = [
        RawMessage(encode(genuine), TOPIC, partition=4, offset=0, timestamp=arrival),
        RawMessage(encode(forged(inference_doc())), TOPIC, partition=4, offset=1, timestamp=arrival),
        RawMessage(encode(inference_doc()), TOPIC, partition=4, offset=2, timestamp=arrival),  # unsigned
        RawMessage(encode(genuine), TOPIC, partition=4, offset=3, timestamp=arrival),  # replay
        RawMessage(encode(stale), TOPIC, partition=4, offset=4, timestamp=arrival),
        RawMessage(signed_bytes(feedback_doc(ts=now_iso())), TOPIC, partition=4, offset=5, timestamp=arrival),
    ]
    result = pipeline.process(batch)
    assert [e.verified for e in result.events] == [True, False, False, False, False, True]
    assert [(topic, partition, offset) for _, topic, partition, offset in detect.observed] == [
        (TOPIC, 4, 0),
        (TOPIC, 4, 5),
    ]


def test_denied_but_verified_events_still_reach_the_detectors(
    pipeline: Pipeline, detect: RecordingDetect
) -> None:
    """Policy denials are violations to watch, not forgeries: detectors see them."""
    document = signed(access_doc(action="export", mfa=False))
    pipeline.process(messages(encode(document)))
    assert detect.event_ids == {document["event_id"]}


# --- time ---------------------------------------------------------------------------


@pytest.mark.parametrize("days", [40, -40, 365])
def test_event_far_from_arrival_is_rejected(pipeline: Pipeline, days: int) -> None:
    document = signed(access_doc(ts=now_iso(timedelta(days=days))))
    result = pipeline.process(messages(encode(document)))
    assert result.events == []
    [row] = result.rejected
    assert row.code == "ts_out_of_range"
    assert "days from arrival (limit 30)" in row.reason
    assert document["ts"][:10] in row.reason


@pytest.mark.parametrize("days", [29, -29])
def test_event_within_the_skew_limit_is_accepted(pipeline: Pipeline, days: int) -> None:
    document = signed(access_doc(ts=now_iso(timedelta(days=days))))
    result = pipeline.process(messages(encode(document)))
    assert result.rejected == []
    assert result.events[0].verified


def test_skew_limit_is_configurable(keyring: Keyring, engine: PolicyEngine) -> None:
    tight = make_pipeline(keyring, engine, max_clock_skew=timedelta(days=1))
    document = signed(access_doc(ts=now_iso(timedelta(days=-2))))
    assert [r.code for r in tight.process(messages(encode(document))).rejected] == ["ts_out_of_range"]


# --- failures inside one event ---------------------------------------------------------


class ExplodingDetect(RecordingDetect):
    def observe(self, event: Event, **position: Any) -> list[FindingRow]:
        if event.principal.id == "svc-lending":
            raise RuntimeError("detector state corrupted")
        return super().observe(event, **position)


def _boom_batch() -> tuple[list[RawMessage], dict[str, Any]]:
    bad = signed(inference_doc(model_id="credit-v2", principal="svc-lending", source="lending-api"))
    batch = messages(
        signed_bytes(inference_doc()),
        encode(bad),
        signed_bytes(access_doc(action="export", mfa=False)),
        signed_bytes(feedback_doc()),
    )
    return batch, bad


def test_error_in_one_event_rejects_it_and_the_batch_goes_on(keyring: Keyring, engine: PolicyEngine) -> None:
    detect = ExplodingDetect()
    pipeline = make_pipeline(keyring, engine, detect)
    batch, _ = _boom_batch()
    result = pipeline.process(batch)
    [rejected] = result.rejected
    assert rejected.code == "internal_error"
    assert "RuntimeError" in rejected.reason
    assert "detector state corrupted" in rejected.reason
    assert rejected.offset == 1
    assert base64.b64decode(rejected.raw_base64) == batch[1].value
    ok_ids = {orjson.loads(m.value)["event_id"] for m in batch if m.offset != 1}
    assert ok_ids == {r.event_id for r in result.events}
    assert [f.stage for f in result.findings] == ["policy"]  # the export without MFA
    assert len(result.alerts) == 1
    assert detect.event_ids == ok_ids  # later events still reach the detectors


def test_event_rejected_by_an_internal_error_is_not_also_stored(
    keyring: Keyring, engine: PolicyEngine
) -> None:
    pipeline = make_pipeline(keyring, engine, ExplodingDetect())
    batch, bad = _boom_batch()
    result = pipeline.process(batch)
    assert_each_message_once(batch, result)
    assert bad["event_id"] not in {r.event_id for r in result.events}
    assert bad["event_id"] not in {r.event_id for r in result.decisions}


class ExplodingIdentity(IdentityVerifier):
    """Fails on carol's events, whether asked for the batch or for one event."""

    def verify_many(self, items: Any) -> Any:
        if any(event.principal.id == "carol" for event, *_ in items):
            raise ValueError("key store unavailable")
        return super().verify_many(items)

    def verify(self, event: Event, *args: Any) -> Any:
        if event.principal.id == "carol":
            raise ValueError("key store unavailable")
        return super().verify(event, *args)


def test_error_while_verifying_one_event_rejects_only_it(keyring: Keyring, engine: PolicyEngine) -> None:
    pipeline = make_pipeline(keyring, engine, identity=ExplodingIdentity(keyring))
    batch = messages(
        signed_bytes(access_doc()), signed_bytes(access_doc(principal="carol")), signed_bytes(feedback_doc())
    )
    result = pipeline.process(batch)
    assert_each_message_once(batch, result)
    assert [(r.offset, r.code) for r in result.rejected] == [(1, "internal_error")]
    assert "key store unavailable" in result.rejected[0].reason


def test_error_while_building_one_request_rejects_only_it(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deriving facts (inventory, calendar) can fail for one event: only it is rejected."""
    real = pipeline_module.request_for

    def failing(event: Event, *args: Any) -> Any:
        if event.principal.id == "carol":
            raise TypeError("can't compare offset-naive and offset-aware times")
        return real(event, *args)

    monkeypatch.setattr(pipeline_module, "request_for", failing)
    batch = messages(
        signed_bytes(access_doc()), signed_bytes(access_doc(principal="carol")), signed_bytes(feedback_doc())
    )
    result = pipeline.process(batch)
    assert_each_message_once(batch, result)
    assert [(r.offset, r.code) for r in result.rejected] == [(1, "internal_error")]
    assert len(result.decisions) == 2


# --- with the shipped detectors ------------------------------------------------------------------


def test_shipped_detectors_take_a_mixed_batch(keyring: Keyring, engine: PolicyEngine) -> None:
    pipeline = Pipeline(IdentityVerifier(keyring), engine)
    raw = signed_bytes(inference_doc())
    batch = messages(
        raw,
        raw,
        signed_bytes(feedback_doc()),
        signed_bytes(training_doc()),
        signed_bytes(access_doc(action="export", mfa=False)),
        encode(forged(inference_doc())),
        b"{}",
    )
    result = pipeline.process(batch)
    assert_each_message_once(batch, result)
    assert "internal_error" not in {r.code for r in result.rejected}


# --- the demo's traffic, end to end ----------------------------------------------------


def test_demo_traffic_surfaces_every_incident(tmp_path: Path, bundle: PolicyBundle) -> None:
    keys_path, inventory_path = tmp_path / "demo-keys.yaml", tmp_path / "demo-inventory.yaml"
    traffic = DemoTraffic(write_demo_keys(keys_path), events=3_000, seed=7)
    write_demo_inventory(inventory_path)
    lines = list(traffic.lines())
    engine = PolicyEngine(bundle, load_inventory(inventory_path))
    pipeline = make_pipeline(load_keyring(keys_path), engine)
    results = [
        pipeline.process(messages(*lines[start : start + 500], start=start))
        for start in range(0, len(lines), 500)
    ]
    events = [r for b in results for r in b.events]
    decisions = [r for b in results for r in b.decisions]
    rejected = [r for b in results for r in b.rejected]

    assert len(events) + len(rejected) == len(lines)
    assert Counter(r.code for r in rejected) == Counter(
        {"invalid_json": 1, "missing_field": 1, "unknown_type": 1, "oversize": 1}
    )
    [forgery] = [e for e in events if not e.verified]
    assert (forgery.principal_id, forgery.verify_reason) == ("svc-checkout", "bad_signature")

    denied = Counter(
        (d.principal_id, d.action, d.model_id, tuple(sorted(d.policy_ids)))
        for d in decisions
        if d.decision == "deny"
    )
    assert denied == Counter(
        {
            ("svc-checkout", "infer", "fraud-v3", ("zt-unverified-denied",)): 1,
            ("mallory", "fine_tune", "fraud-v3", ("default-deny",)): 1,
            ("alice", "fine_tune", "fraud-v3", ("fine-tune-requires-approval",)): 1,
            ("bob", "export", "", ("export-requires-mfa",)): 1,
            ("svc-checkout", "infer", "legacy-scorer", ("inference-requires-approved-model",)): 1,
            ("svc-checkout", "infer", "fraud-v3", ("inference-artifact-matches-registry",)): 1,
        }
    )
    exports = [d for d in decisions if d.action == "export" and d.decision == "allow"]
    assert [d.policy_ids for d in exports] == [["export-by-analysts"]]
    assert {d.bundle_revision for d in decisions} == {engine.revision}


class CollectorWatchingDetect(RecordingDetect):
    """Notes whether the cyclic garbage collector was running while events were observed."""

    def __init__(self) -> None:
        super().__init__()
        self.collector_enabled: list[bool] = []

    def observe(self, event: Event, **position: Any) -> list[FindingRow]:
        self.collector_enabled.append(gc.isenabled())
        return super().observe(event, **position)


def test_the_collector_is_paused_for_a_batch_and_resumed_after(
    keyring: Keyring, engine: PolicyEngine
) -> None:
    detect = CollectorWatchingDetect()
    pipeline = make_pipeline(keyring, engine, detect)
    assert gc.isenabled()
    pipeline.process(messages(signed_bytes(access_doc()), signed_bytes(feedback_doc())))
    assert detect.collector_enabled == [False, False]
    assert gc.isenabled()


def test_a_collector_paused_by_the_caller_stays_paused(keyring: Keyring, engine: PolicyEngine) -> None:
    pipeline = make_pipeline(keyring, engine, RecordingDetect())
    gc.disable()
    try:
        pipeline.process(messages(signed_bytes(access_doc())))
        assert not gc.isenabled()
    finally:
        gc.enable()
