"""The decision API's core: who may ask, what is decided, and that every answer is journaled."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import orjson
import pytest

from api.auth import UnauthenticatedError
from api.records import DecisionRecord
from api.service import Answer, Refused
from policies.bundle import PACK_DIR
from tests.clock import FakeClock
from tests.factories import access_doc, artifact_digest, signed
from tests.unit.api.rig import API_KEY_SECRET, Rig, build_rig, question

SUBJECT_COLUMNS = ("resource_kind", "resource_id", "key_id")


@pytest.fixture
def rig(tmp_path: Path, clock: FakeClock) -> Rig:
    return build_rig(tmp_path, clock)


def _answer(result: object) -> Answer:
    assert isinstance(result, Answer), result
    return result


def test_a_service_asking_about_itself_gets_the_policy_answer(rig: Rig) -> None:
    allowed = _answer(
        rig.ask(rig.bearer("svc-checkout"), question(artifact_digest=artifact_digest("fraud-v3")))[0]
    )
    assert allowed.allowed
    assert allowed.bundle_revision == rig.service.engine.revision
    assert allowed.controls, "an allow names the controls it evidences"
    denied = _answer(rig.ask(rig.bearer("svc-checkout"), question(artifact_digest="sha256:tampered"))[0])
    assert not denied.allowed
    assert denied.policy_ids
    assert "default-deny" not in denied.policy_ids


def test_every_answer_is_journaled_with_origin_api_and_denies_carry_a_finding(rig: Rig) -> None:
    header = rig.bearer("svc-checkout")
    answers = rig.ask(
        header,
        question(artifact_digest=artifact_digest("fraud-v3")),
        question(resource=("model", "legacy-scorer"), artifact_digest=artifact_digest("legacy-scorer")),
    )
    records = rig.journaled()
    assert [r.decision.event_id for r in records] == [_answer(a).decision_id for a in answers]
    assert {r.decision.topic for r in records} == {"api"}
    assert [r.decision.decision for r in records] == ["allow", "deny"]
    assert [len(r.findings) for r in records] == [0, 1]
    finding = records[1].findings[0]
    assert finding.stage == "policy"
    assert finding.principal_id == "svc-checkout"
    assert finding.model_id == "legacy-scorer"
    assert records[0].decision.offset + 1 == records[1].decision.offset
    assert (finding.resource_kind, finding.resource_id) == ("model", "legacy-scorer")


def test_a_journal_written_before_the_finding_subject_columns_reads_back(rig: Rig) -> None:
    """A journal still holding answers when the service is upgraded is stored, not refused."""
    header = rig.bearer("svc-checkout")
    rig.ask(
        header,
        question(resource=("model", "legacy-scorer"), artifact_digest=artifact_digest("legacy-scorer")),
    )
    [record] = rig.journaled()
    event, decision, findings = orjson.loads(orjson.dumps(record.to_json()))
    older = [event, decision, [f[: -len(SUBJECT_COLUMNS)] for f in findings]]
    [finding] = DecisionRecord.from_json(older).findings
    assert finding == record.findings[0]._replace(resource_kind="", resource_id="", key_id="")


def test_no_credential_or_a_bad_one_is_refused_before_any_decision(rig: Rig) -> None:
    for header in ("", "Bearer ", "Basic dXNlcg==", "Bearer not-a-jwt", f"ApiKey api-checkout:{'x' * 20}"):
        with pytest.raises(UnauthenticatedError):
            rig.caller(header)
    expired = rig.bearer("svc-checkout", at=rig.clock.wall() - timedelta(hours=2))
    with pytest.raises(UnauthenticatedError, match="token_expired"):
        rig.caller(expired)
    assert rig.journaled() == []


def test_an_api_key_needs_the_api_source(rig: Rig) -> None:
    caller = rig.caller(f"ApiKey api-checkout:{API_KEY_SECRET}")
    assert (caller.subject, caller.kind, caller.via) == ("api-checkout", "service", "api_key")
    # A producer's signing key is not an API key, even with its right secret.
    with pytest.raises(UnauthenticatedError):
        rig.caller("ApiKey labeling-2026:labeling-plain-text-secret-0001")


def test_asking_about_someone_else_needs_a_delegation_policy(rig: Rig) -> None:
    about_alice = question(principal="alice", kind="user", action="evaluate")
    refused = _answer(rig.ask(rig.bearer("svc-checkout"), about_alice)[0])
    assert (refused.allowed, refused.action, refused.policy_ids) == (
        False,
        "act_on_behalf",
        ("default-deny",),
    )
    delegated = _answer(rig.ask(rig.bearer("support-bot"), about_alice)[0])
    assert delegated.action == "evaluate", "a permitted delegate gets the answer about the principal"
    records = rig.journaled()
    assert [(r.decision.action, r.decision.resource_id) for r in records] == [
        ("act_on_behalf", "alice"),
        ("evaluate", "fraud-v3"),
    ]
    assert records[1].decision.roles == ["ml-engineer"], "the delegate's own roles are never lent"
    refusal = records[0].event
    assert (refusal.principal_id, refusal.principal_kind, refusal.resource_kind) == (
        "svc-checkout",
        "service",
        "user",
    )


def test_a_token_subject_can_not_borrow_anothers_roles_by_naming_them(rig: Rig) -> None:
    # mallory holds no role that permits inference; claiming to be svc-checkout is a delegation.
    answer = _answer(rig.ask(rig.bearer("mallory"), question())[0])
    assert not answer.allowed
    assert answer.action == "act_on_behalf"


def test_a_signed_event_is_verified_like_a_streamed_one_and_a_replay_is_denied(rig: Rig) -> None:
    event = signed(access_doc(principal="bob", ts=rig.clock.wall().isoformat()))
    header = rig.bearer("bob")
    first = _answer(rig.ask(header, {"event": event})[0])
    assert first.allowed
    assert first.verified
    again = _answer(rig.ask(header, {"event": event})[0])
    assert not again.verified
    assert not again.allowed
    tampered = {**event, "records": 99_999}
    assert not _answer(rig.ask(header, {"event": tampered})[0]).verified


def test_a_malformed_event_is_refused_and_not_journaled(rig: Rig) -> None:
    (refused,) = rig.ask(rig.bearer("bob"), {"event": {"type": "access"}})
    assert isinstance(refused, Refused)
    assert refused.code
    assert rig.journaled() == []


def test_an_invalid_policy_reload_keeps_the_old_bundle(tmp_path: Path, clock: FakeClock) -> None:
    policies = tmp_path / "policies"
    shutil.copytree(PACK_DIR / "stable", policies / "stable")
    shutil.copy(PACK_DIR / "schema.cedarschema", policies)
    rig = build_rig(tmp_path, clock, policies)
    before = rig.service.engine.revision
    broken = policies / "stable" / "inference" / "policy.cedar"
    broken.write_text(broken.read_text() + "\npermit (principal, action, resource) when {", encoding="utf-8")
    clock.advance(1)
    assert rig.service.reload().revision == before
    assert (
        _answer(rig.ask(rig.bearer("mallory"), question(principal="mallory", kind="user"))[0]).allowed
        is False
    )
