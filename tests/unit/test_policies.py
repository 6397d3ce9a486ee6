"""The bundled Cedar pack, bundle loading and the caching engine."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

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
from policies.bundle import PACK_DIR
from schemas.events import EVENT_ADAPTER
from tests.factories import access_doc, feedback_doc, inference_doc, training_doc

OK = Verdict(True, "ok", "k")
FORGED = Verdict(False, "bad_signature", "k")


@pytest.fixture(scope="module")
def bundle() -> PolicyBundle:
    return load_bundle()


@pytest.fixture
def engine(bundle: PolicyBundle) -> PolicyEngine:
    return PolicyEngine(bundle)


def decide(engine: PolicyEngine, document: dict[str, Any], verdict: Verdict = OK) -> Decision:
    event = EVENT_ADAPTER.validate_python(document)
    [decision] = engine.decide_many([request_for(event, verdict)])
    return decision


def allow(policy_id: str) -> Decision:
    return Decision(True, (policy_id,))


DENY = Decision(False, ("default-deny",))

# (case id, document builder, expected decision). Every permit in the pack appears
# at least once allowed (see test_every_permit_policy_is_exercised).
CASES: list[tuple[str, Any, Decision]] = [
    # access.cedar
    ("analyst-read", lambda: access_doc(action="read"), allow("read-by-analysts")),
    ("analyst-login", lambda: access_doc(action="login"), allow("read-by-analysts")),
    ("analyst-write", lambda: access_doc(action="write"), DENY),
    ("contractor-read", lambda: access_doc(action="read", roles=("contractor",)), DENY),
    (
        "data-engineer-write",
        lambda: access_doc(action="write", principal="carol", roles=("data-engineer",)),
        allow("write-by-data-engineers"),
    ),
    (
        "data-engineer-delete",
        lambda: access_doc(action="delete", principal="carol", roles=("data-engineer",)),
        allow("write-by-data-engineers"),
    ),
    (
        "data-engineer-read",
        lambda: access_doc(action="read", principal="carol", roles=("data-engineer",)),
        DENY,
    ),
    ("export-with-mfa", lambda: access_doc(action="export", mfa=True), allow("export-needs-mfa")),
    ("export-without-mfa", lambda: access_doc(action="export", mfa=False), DENY),
    (
        "export-by-data-engineer",
        lambda: access_doc(action="export", mfa=True, principal="carol", roles=("data-engineer",)),
        DENY,
    ),
    # inference.cedar
    ("serving-infer", inference_doc, allow("inference-by-serving-roles")),
    ("infer-without-role", lambda: inference_doc(roles=()), DENY),
    ("infer-by-labeler", lambda: inference_doc(roles=("labeler",)), DENY),
    ("labeler-feedback", feedback_doc, allow("feedback-by-labelers")),
    ("feedback-by-serving", lambda: feedback_doc(roles=("inference-client",)), DENY),
    # training.cedar
    *[
        (f"ml-engineer-{action}", lambda a=action: training_doc(action=a), allow("training-by-ml-engineers"))
        for action in ("ingest", "train", "evaluate", "register")
    ],
    ("contractor-train", lambda: training_doc(principal="mallory", roles=("contractor",)), DENY),
    ("fine-tune-approved", lambda: training_doc(action="fine_tune"), allow("fine-tune-needs-approval")),
    ("fine-tune-unapproved", lambda: training_doc(action="fine_tune", approved=False), DENY),
    (
        "fine-tune-by-contractor",
        lambda: training_doc(action="fine_tune", principal="mallory", roles=("contractor",)),
        DENY,
    ),
    *[
        (
            f"release-{action}",
            lambda a=action: training_doc(action=a, principal="rita", roles=("release-manager",)),
            allow("deploy-needs-approval"),
        )
        for action in ("deploy", "rollback")
    ],
    (
        "release-deploy-unapproved",
        lambda: training_doc(action="deploy", approved=False, principal="rita", roles=("release-manager",)),
        DENY,
    ),
    ("ml-engineer-deploy", lambda: training_doc(action="deploy"), DENY),
    (
        "release-manager-train",
        lambda: training_doc(action="train", principal="rita", roles=("release-manager",)),
        DENY,
    ),
]


@pytest.mark.parametrize(("builder", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bundled_pack_decisions(engine: PolicyEngine, builder: Any, expected: Decision) -> None:
    decision = decide(engine, builder())
    assert decision == expected


def test_every_permit_policy_is_exercised(bundle: PolicyBundle) -> None:
    permits = {p.id for p in bundle.policies if p.effect == "permit"}
    exercised = {c[2].policy_ids[0] for c in CASES if c[2].allowed}
    assert permits == exercised
    assert {p.file for p in bundle.policies} == {
        f"stable/{p.name}" for p in (PACK_DIR / "stable").glob("*.cedar")
    }


def test_pack_metadata(bundle: PolicyBundle) -> None:
    by_id = {p.id: p for p in bundle.policies}
    assert by_id["zt-unverified-denied"].effect == "forbid"
    assert by_id["zt-unverified-denied"].file == "stable/identity.cedar"
    assert by_id["deploy-needs-approval"].severity == "critical"
    assert by_id["read-by-analysts"].title == "Analysts may read and sign in"
    assert len(by_id) == len(bundle.policies)


@pytest.mark.parametrize(
    "builder",
    [
        lambda: access_doc(action="read"),
        lambda: access_doc(action="export", mfa=True),
        inference_doc,
        feedback_doc,
        lambda: training_doc(action="deploy", principal="rita", roles=("release-manager",)),
    ],
)
def test_unverified_events_are_denied_by_zero_trust(engine: PolicyEngine, builder: Any) -> None:
    document = builder()
    assert decide(engine, document).allowed  # the same event, verified, is allowed
    assert decide(engine, document, FORGED) == Decision(False, ("zt-unverified-denied",))


def test_zero_trust_forbid_overrides_a_matching_permit(engine: PolicyEngine) -> None:
    # even if the roles were (wrongly) kept, an unverified request is denied by the forbid
    request = AuthzRequest("User", "bob", ("analyst",), "read", "Dataset", "d", (("verified", False),))
    assert engine.decide_many([request]) == [Decision(False, ("zt-unverified-denied",))]


def test_claimed_roles_only_count_when_verified() -> None:
    event = EVENT_ADAPTER.validate_python(access_doc(roles=("analyst", "admin")))
    assert request_for(event, OK).roles == ("admin", "analyst")
    assert request_for(event, FORGED).roles == ()
    assert request_for(event, Verdict(False, "unsigned")).roles == ()


def test_request_facts_reflect_the_event() -> None:
    access = EVENT_ADAPTER.validate_python(access_doc(action="export", mfa=False, outcome="denied"))
    assert dict(request_for(access, OK).facts) == {"verified": True, "mfa": False, "outcome": "denied"}
    training = EVENT_ADAPTER.validate_python(training_doc(approved=False))
    assert dict(request_for(training, FORGED).facts) == {"verified": False, "approval_present": False}
    inference = EVENT_ADAPTER.validate_python(inference_doc())
    request = request_for(inference, OK)
    assert dict(request.facts) == {"verified": True}
    assert (request.principal_type, request.resource_type) == ("Service", "Model")


def test_requests_for_identical_events_are_equal_and_hashable() -> None:
    a = EVENT_ADAPTER.validate_python(access_doc(event_id="e1"))
    b = EVENT_ADAPTER.validate_python(access_doc(event_id="e2"))
    assert request_for(a, OK) == request_for(b, OK)
    assert len({request_for(a, OK), request_for(b, OK), request_for(a, FORGED)}) == 2


@pytest.mark.parametrize(
    "principal",
    ['quote"d', "back\\slash", "o'neil", "tab\there", "line\nbreak", "nbsp\u00a0id", "zoë", "j d"],
)
def test_principal_ids_are_matched_literally(engine: PolicyEngine, principal: str) -> None:
    """An analyst is an analyst whatever characters their id contains."""
    decision = decide(engine, access_doc(principal=principal))
    assert decision == allow("read-by-analysts"), decision.errors


def test_resource_ids_are_matched_literally(engine: PolicyEngine) -> None:
    resource = {"kind": "dataset", "id": "o'reilly-orders"}
    decision = decide(engine, access_doc(resource=resource))
    assert decision == allow("read-by-analysts"), decision.errors


def test_principal_id_cannot_inject_another_entity(engine: PolicyEngine) -> None:
    # a crafted id that would read as a different uid if quoting were naive
    principal = 'x", Role::"analyst'
    decision = decide(engine, access_doc(principal=principal, roles=("contractor",)))
    assert not decision.allowed


# --- bundle loading -----------------------------------------------------------------


def _copy_pack(tmp_path: Path) -> Path:
    target = tmp_path / "pack"
    shutil.copytree(PACK_DIR / "stable", target / "stable")
    return target


def test_revision_is_stable_for_the_same_content(tmp_path: Path, bundle: PolicyBundle) -> None:
    pack = _copy_pack(tmp_path)
    first, second = load_bundle(pack), load_bundle(pack)
    assert first.revision == second.revision == bundle.revision
    assert len(bundle.revision) == 16
    assert int(bundle.revision, 16) >= 0


def test_revision_changes_when_a_policy_changes(tmp_path: Path, bundle: PolicyBundle) -> None:
    pack = _copy_pack(tmp_path)
    path = pack / "stable" / "access.cedar"
    path.write_text(path.read_text().replace('@severity("high")', '@severity("critical")'))
    changed = load_bundle(pack)
    assert changed.revision != bundle.revision
    assert {p.id: p.severity for p in changed.policies}["export-needs-mfa"] == "critical"


def test_revision_changes_for_a_comment_only_edit(tmp_path: Path, bundle: PolicyBundle) -> None:
    pack = _copy_pack(tmp_path)
    path = pack / "stable" / "inference.cedar"
    path.write_text(path.read_text() + "\n// reviewed 2026-03\n")
    assert load_bundle(pack).revision != bundle.revision


def test_revision_changes_when_a_file_is_renamed(tmp_path: Path, bundle: PolicyBundle) -> None:
    pack = _copy_pack(tmp_path)
    (pack / "stable" / "access.cedar").rename(pack / "stable" / "data-access.cedar")
    renamed = load_bundle(pack)
    assert renamed.revision != bundle.revision
    assert {p.id for p in renamed.policies} == {p.id for p in bundle.policies}


def test_added_policy_file_is_loaded_and_changes_the_revision(tmp_path: Path, bundle: PolicyBundle) -> None:
    pack = _copy_pack(tmp_path)
    (pack / "incubating").mkdir()
    (pack / "incubating" / "audit.cedar").write_text(
        '@id("auditors-read")\n@severity("low")\n'
        'permit (principal in Role::"auditor", action == Action::"read", resource);\n'
    )
    extended = load_bundle(pack)
    assert extended.revision != bundle.revision
    engine = PolicyEngine(extended)
    auditor = decide(engine, access_doc(roles=("auditor",)))
    assert auditor == allow("auditors-read")
    # positions still map back to the right ids after the new file is merged in
    assert decide(engine, access_doc(action="export", mfa=True)) == allow("export-needs-mfa")
    assert decide(engine, training_doc(action="fine_tune")) == allow("fine-tune-needs-approval")


def _write_pack(tmp_path: Path, files: dict[str, str]) -> Path:
    pack = tmp_path / "custom"
    for name, text in files.items():
        (pack / name).parent.mkdir(parents=True, exist_ok=True)
        (pack / name).write_text(text)
    return pack


GOOD = '@id("good")\npermit (principal, action == Action::"read", resource);\n'


def test_policy_without_id_names_the_file(tmp_path: Path) -> None:
    pack = _write_pack(
        tmp_path,
        {"a.cedar": GOOD, "b/nameless.cedar": 'permit (principal, action == Action::"write", resource);\n'},
    )
    with pytest.raises(BundleError, match=r"b/nameless\.cedar.*@id"):
        load_bundle(pack)


def test_duplicate_id_across_files_names_both(tmp_path: Path) -> None:
    pack = _write_pack(tmp_path, {"a.cedar": GOOD, "z.cedar": GOOD.replace("read", "write")})
    with pytest.raises(BundleError) as info:
        load_bundle(pack)
    message = str(info.value)
    assert message.startswith("z.cedar")
    assert "'good'" in message
    assert "a.cedar" in message


def test_duplicate_id_within_one_file(tmp_path: Path) -> None:
    pack = _write_pack(tmp_path, {"one.cedar": GOOD + GOOD})
    with pytest.raises(BundleError, match=r"one\.cedar.*'good'"):
        load_bundle(pack)


def test_unknown_severity_names_the_file(tmp_path: Path) -> None:
    pack = _write_pack(tmp_path, {"sev.cedar": '@severity("urgent")\n' + GOOD})
    with pytest.raises(BundleError, match=r"sev\.cedar.*urgent"):
        load_bundle(pack)


def test_syntax_error_names_the_file(tmp_path: Path) -> None:
    pack = _write_pack(tmp_path, {"ok.cedar": GOOD, "broken.cedar": "permit (principal, action, resource"})
    with pytest.raises(BundleError, match=r"^broken\.cedar"):
        load_bundle(pack)


def test_directory_without_policies(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match=r"no \.cedar files"):
        load_bundle(tmp_path)


# --- engine cache -------------------------------------------------------------------


def _request(principal: str = "bob", roles: tuple[str, ...] = ("analyst",), action: str = "read") -> Any:
    return AuthzRequest("User", principal, roles, action, "Dataset", "transactions", (("verified", True),))


def test_identical_requests_in_a_batch_are_evaluated_once(engine: PolicyEngine) -> None:
    request = _request()
    decisions = engine.decide_many([request, request, _request()])
    assert decisions == [allow("read-by-analysts")] * 3
    assert engine.evaluated == 1
    assert engine.cache_hits == 2


def test_decisions_are_cached_across_batches(engine: PolicyEngine) -> None:
    engine.decide_many([_request()])
    assert engine.decide_many([_request(), _request()]) == [allow("read-by-analysts")] * 2
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
        analyst: allow("read-by-analysts"),
        nobody: DENY,
        engineer: allow("write-by-data-engineers"),
        analyst_write: DENY,
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
