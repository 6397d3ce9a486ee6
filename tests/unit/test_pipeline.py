"""vigil.pipeline: decode, verify, decide, detect and alert over one batch."""

from __future__ import annotations

import base64
import random
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from alerting.gate import AlertGate
from detectors.feature_drift import FeatureDriftMonitor
from identity.keyring import Keyring, load_keyring
from identity.signing import sign_document
from policies.bundle import PolicyBundle, load_bundle
from tests.factories import (
    KEYS,
    access_doc,
    encode,
    feedback_doc,
    forged,
    inference_doc,
    make_keyring,
    now_iso,
    signed,
    signed_bytes,
    training_doc,
)
from vigil.demo import DemoTraffic, write_demo_keys
from vigil.pipeline import BatchResult, Pipeline, RawMessage

TOPIC = "vigil.events"


@pytest.fixture(scope="module")
def bundle() -> PolicyBundle:
    return load_bundle()


@pytest.fixture
def keyring(tmp_path: Path) -> Keyring:
    return make_keyring(tmp_path)


@pytest.fixture
def pipeline(keyring: Keyring, bundle: PolicyBundle) -> Pipeline:
    return Pipeline(keyring, bundle)


def messages(*values: bytes, start: int = 0) -> list[RawMessage]:
    return [RawMessage(value, TOPIC, partition=0, offset=start + i) for i, value in enumerate(values)]


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
        signed_bytes(feedback_doc()),
        signed_bytes(training_doc(action="fine_tune")),
        signed_bytes(access_doc(action="export", mfa=True)),
    )
    result = pipeline.process(batch)
    assert all(r.verified and r.verify_reason == "ok" for r in result.events)
    assert {d.decision for d in result.decisions} == {"allow"}
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
    assert row.signature == document["signature"]["value"]
    assert orjson.loads(row.payload) == {k: v for k, v in document.items() if k != "signature"}
    assert (row.topic, row.partition, row.offset) == (TOPIC, 3, 77)
    assert row.roles == ["inference-client"]


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


def test_rejected_ids_are_stable_for_a_replayed_message(pipeline: Pipeline) -> None:
    batch = messages(b"not json", b"not json either")
    first = pipeline.process(batch).rejected
    second = pipeline.process(batch).rejected
    assert [r.rejected_id for r in first] == [r.rejected_id for r in second]
    assert first[0].rejected_id != first[1].rejected_id


# --- identity ---------------------------------------------------------------------------


def test_forged_event_is_stored_unverified_denied_and_alerted(pipeline: Pipeline) -> None:
    document = forged(inference_doc())
    result = pipeline.process(messages(encode(document)))
    rows = by_event(result, document["event_id"])

    [event] = rows["event"]
    assert (event.verified, event.verify_reason) == (False, "bad_signature")
    [decision] = rows["decision"]
    assert decision.decision == "deny"
    assert decision.policy_ids == ["zt-unverified-denied"]
    assert decision.verified is False

    stages = {f.stage: f for f in rows["findings"]}
    assert set(stages) == {"identity", "policy"}
    assert stages["identity"].detector_or_rule == "signature-bad-signature"
    assert stages["identity"].severity == "critical"
    assert "checkout-api" in stages["identity"].message
    assert stages["policy"].detector_or_rule == "zt-unverified-denied"
    assert stages["policy"].severity == "high"
    assert {a.stage for a in rows["alerts"]} == {"identity", "policy"}


@pytest.mark.parametrize(
    ("make", "reason", "severity"),
    [
        (lambda: encode(access_doc()), "unsigned", "high"),
        (lambda: encode(signed(access_doc(), KEYS["labeling"])), "key_not_for_source", "critical"),
        (lambda: encode(sign_document(access_doc(), "retired-2019", b"r" * 32)), "unknown_key", "high"),
    ],
)
def test_identity_findings_by_reason(pipeline: Pipeline, make: Any, reason: str, severity: str) -> None:
    result = pipeline.process(messages(make()))
    [event] = result.events
    assert event.verify_reason == reason
    [identity] = [f for f in result.findings if f.stage == "identity"]
    assert identity.detector_or_rule == "signature-" + reason.replace("_", "-")
    assert identity.severity == severity
    assert orjson.loads(identity.details)["reason"] == reason


def test_unverified_roles_do_not_grant_access(pipeline: Pipeline) -> None:
    document = forged(access_doc(action="export", mfa=True))
    [decision] = pipeline.process(messages(encode(document))).decisions
    assert decision.decision == "deny"


# --- policy -------------------------------------------------------------------------


def test_decisions_carry_the_bundle_revision(pipeline: Pipeline, bundle: PolicyBundle) -> None:
    batch = messages(signed_bytes(access_doc()), signed_bytes(access_doc(action="export", mfa=False)))
    result = pipeline.process(batch)
    assert [d.bundle_revision for d in result.decisions] == [bundle.revision] * 2
    [policy] = [f for f in result.findings if f.stage == "policy"]
    assert orjson.loads(policy.details)["bundle_revision"] == bundle.revision


def test_export_without_mfa_is_denied_and_alerted(pipeline: Pipeline) -> None:
    without = signed(access_doc(action="export", mfa=False))
    with_mfa = signed(access_doc(action="export", mfa=True))
    result = pipeline.process(messages(encode(without), encode(with_mfa)))
    assert [(d.event_id, d.decision) for d in result.decisions] == [
        (without["event_id"], "deny"),
        (with_mfa["event_id"], "allow"),
    ]
    assert result.decisions[1].policy_ids == ["export-needs-mfa"]
    [policy] = result.findings
    assert (policy.event_id, policy.stage, policy.detector_or_rule) == (
        without["event_id"],
        "policy",
        "default-deny",
    )
    assert "default deny" in policy.message
    assert [a.event_id for a in result.alerts] == [without["event_id"]]


def test_fine_tune_without_approval_is_a_policy_finding(pipeline: Pipeline) -> None:
    document = signed(training_doc(action="fine_tune", approved=False))
    result = pipeline.process(messages(encode(document)))
    assert result.decisions[0].decision == "deny"
    assert [(f.stage, f.model_id, f.principal_id) for f in result.findings] == [
        ("policy", "fraud-v3", "alice")
    ]


# --- drift ----------------------------------------------------------------------------


def _drifting(n: int, change: int, seed: int, make: Any) -> list[bytes]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        amount = rng.gauss(100.0 if i < change else 130.0, 10.0)
        out.append(make(inference_doc(features={"amount": amount, "country": "DE"})))
    return out


def _run_in_batches(pipeline: Pipeline, values: list[bytes], size: int = 250) -> list[BatchResult]:
    results = []
    for start in range(0, len(values), size):
        results.append(pipeline.process(messages(*values[start : start + size], start=start)))
    return results


def test_verified_drifting_feature_yields_a_detector_finding_and_alert(pipeline: Pipeline) -> None:
    results = _run_in_batches(pipeline, _drifting(2_000, 1_000, seed=1, make=signed_bytes))
    findings = [f for r in results for f in r.findings]
    alerts = [a for r in results for a in r.alerts]
    [drift] = findings
    assert (drift.stage, drift.detector_or_rule, drift.model_id) == (
        "detector",
        "adwin-mean-shift",
        "fraud-v3",
    )
    details = orjson.loads(drift.details)
    assert details["feature"] == "amount"
    assert details["mean_before"] == pytest.approx(100.0, abs=3)
    assert details["mean_recent"] > 115
    assert 1_000 < details["events_seen"] < 1_300
    assert "'amount'" in drift.message
    assert [a.detector_or_rule for a in alerts] == ["adwin-mean-shift"]


def test_forged_drifting_events_do_not_feed_the_detector(pipeline: Pipeline) -> None:
    results = _run_in_batches(pipeline, _drifting(2_000, 1_000, seed=1, make=lambda d: encode(forged(d))))
    stages = {f.stage for r in results for f in r.findings}
    assert stages == {"identity", "policy"}
    assert pipeline.drift.keys == 0


def test_unsigned_drifting_events_do_not_feed_the_detector(pipeline: Pipeline) -> None:
    _run_in_batches(pipeline, _drifting(1_500, 500, seed=2, make=encode))
    assert pipeline.drift.keys == 0


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


def test_skew_limit_is_configurable(keyring: Keyring, bundle: PolicyBundle) -> None:
    tight = Pipeline(keyring, bundle, max_clock_skew=timedelta(days=1))
    document = signed(access_doc(ts=now_iso(timedelta(days=-2))))
    assert [r.code for r in tight.process(messages(encode(document))).rejected] == ["ts_out_of_range"]


# --- failures inside one event ---------------------------------------------------------


@pytest.fixture
def boom_pipeline(keyring: Keyring, bundle: PolicyBundle, monkeypatch: pytest.MonkeyPatch) -> Pipeline:
    pipeline = Pipeline(keyring, bundle, drift=FeatureDriftMonitor(), gate=AlertGate())
    real_update = pipeline.drift.update

    def update(model_id: str, features: Any) -> Any:
        if model_id == "boom-v1":
            raise RuntimeError("detector state corrupted")
        return real_update(model_id, features)

    monkeypatch.setattr(pipeline.drift, "update", update)
    return pipeline


def _boom_batch() -> tuple[list[RawMessage], dict[str, Any]]:
    bad = signed(inference_doc(model_id="boom-v1"))
    batch = messages(
        signed_bytes(inference_doc()),
        encode(bad),
        signed_bytes(access_doc(action="export", mfa=False)),
        signed_bytes(inference_doc(model_id="credit-v2")),
    )
    return batch, bad


def test_error_in_one_event_rejects_it_and_the_batch_goes_on(boom_pipeline: Pipeline) -> None:
    batch, _ = _boom_batch()
    result = boom_pipeline.process(batch)
    [rejected] = result.rejected
    assert rejected.code == "internal_error"
    assert "RuntimeError" in rejected.reason
    assert "detector state corrupted" in rejected.reason
    assert rejected.offset == 1
    assert base64.b64decode(rejected.raw_base64) == batch[1].value
    ok_ids = {orjson.loads(m.value)["event_id"] for m in batch if m.offset != 1}
    assert ok_ids <= {r.event_id for r in result.events}
    assert [f.stage for f in result.findings] == ["policy"]  # the export without MFA
    assert len(result.alerts) == 1
    # fraud-v3 and credit-v2 still feed the detector: amount and merchant_risk of each
    assert boom_pipeline.drift.keys == 4


def test_event_rejected_by_an_internal_error_is_not_also_stored(boom_pipeline: Pipeline) -> None:
    batch, bad = _boom_batch()
    result = boom_pipeline.process(batch)
    assert_each_message_once(batch, result)
    assert bad["event_id"] not in {r.event_id for r in result.events}
    assert bad["event_id"] not in {r.event_id for r in result.decisions}


# --- the demo's traffic, end to end ----------------------------------------------------


def test_demo_traffic_surfaces_every_incident(tmp_path: Path, bundle: PolicyBundle) -> None:
    keys_path = tmp_path / "demo-keys.yaml"
    traffic = DemoTraffic(write_demo_keys(keys_path), events=3_000, seed=7)
    lines = list(traffic.lines())
    pipeline = Pipeline(load_keyring(keys_path), bundle)
    results = _run_in_batches(pipeline, lines, size=500)
    events = [r for b in results for r in b.events]
    decisions = [r for b in results for r in b.decisions]
    findings = [r for b in results for r in b.findings]
    rejected = [r for b in results for r in b.rejected]

    assert len(events) + len(rejected) == len(lines)
    assert Counter(r.code for r in rejected) == Counter(
        {"invalid_json": 1, "missing_field": 1, "unknown_type": 1, "oversize": 1}
    )
    [forgery] = [e for e in events if not e.verified]
    assert (forgery.principal_id, forgery.verify_reason) == ("svc-checkout", "bad_signature")

    denied = Counter(
        (d.principal_id, d.action, tuple(d.policy_ids)) for d in decisions if d.decision == "deny"
    )
    assert denied == Counter(
        {
            ("svc-checkout", "infer", ("zt-unverified-denied",)): 1,
            ("mallory", "fine_tune", ("default-deny",)): 1,
            ("alice", "fine_tune", ("default-deny",)): 1,
            ("bob", "export", ("default-deny",)): 1,
        }
    )
    exports = [d for d in decisions if d.action == "export" and d.decision == "allow"]
    assert [d.policy_ids for d in exports] == [["export-needs-mfa"]]

    position = {e.event_id: e.offset for e in events}  # offset = index in the stream
    drift_from = 2_000  # the demo drifts from two thirds of its ordinary events on
    detector = [f for f in findings if f.stage == "detector"]
    assert detector, "the demo's drifting amount went unnoticed"
    assert {(f.model_id, orjson.loads(f.details)["feature"]) for f in detector} == {("fraud-v3", "amount")}
    assert all(position[f.event_id] > drift_from for f in detector)
