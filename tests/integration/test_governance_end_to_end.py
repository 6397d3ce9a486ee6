"""Zero Trust and policies through the real broker: each threat gets the right answer.

Events from an unknown key, with a wrong signature, an expired token, a replay, a
stale timestamp, an unapproved fine-tune, inference on a quarantined model, a
serving artifact that differs from the registry and an export without MFA must each
be denied with the right policy id, controls and finding; permitted events must be
allowed by the policy that permits them. Producers sign with HMAC and with Ed25519.
"""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import orjson
import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from identity.signing import Ed25519Signer, HmacSigner
from tests.integration.conftest import WorkerEnv, produce

pytestmark = pytest.mark.integration

HMAC_SECRET = b"scoring-api-secret-0123456789abcd"
PORTAL_SECRET = b"data-portal-secret-0123456789abcd"
ISSUER = "https://idp.example.test"
AUDIENCE = "vigil"


class World:
    """Keys, tokens and inventory for one test run, written into the worker's data dir."""

    def __init__(self, directory: Path) -> None:
        self.platform_key = Ed25519PrivateKey.generate()
        self.idp_key = ec.generate_private_key(ec.SECP256R1())
        self.scoring = HmacSigner("scoring-1", HMAC_SECRET)
        self.portal = HmacSigner("portal-1", PORTAL_SECRET)
        self.platform = Ed25519Signer("platform-ed-1", self.platform_key)
        raw_public = self.platform_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        keys = [
            {"key_id": "scoring-1", "secret": "hex:" + HMAC_SECRET.hex(), "sources": ["scoring-api"]},
            {"key_id": "portal-1", "secret": "hex:" + PORTAL_SECRET.hex(), "sources": ["data-portal"]},
            {
                "key_id": "platform-ed-1",
                "alg": "ed25519",
                "public_key": "base64:" + base64.b64encode(raw_public).decode(),
                "sources": ["ml-platform"],
                "principals": ["alice", "mallory"],
            },
        ]
        (directory / "keys.yaml").write_text(yaml.safe_dump({"keys": keys}))
        jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self.idp_key.public_key()))
        (directory / "jwks.json").write_text(json.dumps({"keys": [{**jwk, "kid": "idp-1", "alg": "ES256"}]}))
        inventory = {
            "principals": [
                {"id": "svc-scoring", "kind": "service", "roles": ["inference-client"]},
                {"id": "alice", "kind": "user", "roles": ["ml-engineer"]},
                {"id": "bob", "kind": "user", "roles": []},
            ],
            "models": [
                {"id": "risk-v1", "status": "approved", "artifact_digest": "sha256:risk-v1-good"},
                {"id": "legacy-v0", "status": "quarantined", "artifact_digest": "sha256:legacy"},
            ],
            "datasets": [{"id": "loans-2026", "classification": "confidential", "approved": True}],
        }
        (directory / "inventory.yaml").write_text(yaml.safe_dump(inventory))

    def token(self, subject: str, lifetime: timedelta, **claims: Any) -> str:
        now = datetime.now(UTC)
        payload = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": subject,
            "iat": now,
            "exp": now + lifetime,
            **claims,
        }
        return jwt.encode(payload, self.idp_key, algorithm="ES256", headers={"kid": "idp-1"})


def _base(
    event_id: str,
    kind: str,
    source: str,
    principal: dict[str, Any],
    action: str,
    resource: dict[str, str],
    ts: datetime | None = None,
) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "schema_version": 1,
        "type": kind,
        "ts": (ts or datetime.now(UTC) - timedelta(seconds=5)).isoformat(),
        "source": source,
        "principal": principal,
        "action": action,
        "resource": resource,
    }


def inference(
    event_id: str, model: str = "risk-v1", digest: str = "sha256:risk-v1-good", **extra: Any
) -> dict[str, Any]:
    doc = _base(
        event_id,
        "inference",
        "scoring-api",
        {"id": "svc-scoring", "kind": "service"},
        "infer",
        {"kind": "model", "id": model},
        **extra,
    )
    doc.update(
        model_id=model,
        model_version="1",
        artifact_digest=digest,
        request_id=f"r-{event_id}",
        features={"x": 1.0},
        prediction={"score": 0.2},
        latency_ms=9.5,
    )
    return doc


def fine_tune(event_id: str, principal: str, approved: bool) -> dict[str, Any]:
    doc = _base(
        event_id,
        "training",
        "ml-platform",
        {"id": principal, "kind": "user"},
        "fine_tune",
        {"kind": "model", "id": "risk-v1"},
    )
    doc.update(
        run_id=f"run-{event_id}",
        model_id="risk-v1",
        dataset_id="loans-2026",
        dataset_digest="sha256:loans",
        code_commit="abc123",
    )
    if approved:
        doc["approval"] = {"ticket": "CHG-7", "approver": "dana"}
    return doc


def export(event_id: str, token: str | None, mfa: bool) -> dict[str, Any]:
    doc = _base(
        event_id,
        "access",
        "data-portal",
        {"id": "bob", "kind": "user", "roles": ["admin"]},
        "export",
        {"kind": "dataset", "id": "loans-2026"},
    )
    doc.update(outcome="allowed", client={"ip": "10.1.2.3"}, mfa=mfa, records=5000)
    if token is not None:
        doc["auth"] = {"token": token}
    return doc


def test_each_threat_is_denied_by_the_right_policy_with_its_controls(worker_env: WorkerEnv) -> None:
    world = World(worker_env.data_dir)
    worker_env.extra.update(
        VIGIL_KEYS_FILE=str(worker_env.data_dir / "keys.yaml"),
        VIGIL_POLICIES_INVENTORY=str(worker_env.data_dir / "inventory.yaml"),
        VIGIL_IDENTITY_JWKS=str(worker_env.data_dir / "jwks.json"),
        VIGIL_IDENTITY_JWT_ISSUER=ISSUER,
        VIGIL_IDENTITY_JWT_AUDIENCE=AUDIENCE,
    )
    analyst_mfa = world.token("bob", timedelta(hours=1), roles=["analyst"], amr=["pwd", "otp"])
    analyst_no_mfa = world.token("bob", timedelta(hours=1), roles=["analyst"], amr=["pwd"])
    expired = world.token("bob", timedelta(seconds=-600), roles=["analyst"], amr=["otp"])

    ok = orjson.dumps(world.scoring.sign(inference("ok-infer")))
    wrong_key = HmacSigner("scoring-9", HMAC_SECRET).sign(inference("unknown-key"))
    tampered = world.scoring.sign(inference("bad-sig"))
    tampered["features"]["x"] = 99.0
    events: dict[str, bytes] = {
        "ok-infer": ok,
        "unknown-key": orjson.dumps(wrong_key),
        "bad-sig": orjson.dumps(tampered),
        "stale": orjson.dumps(
            world.scoring.sign(inference("stale", ts=datetime.now(UTC) - timedelta(hours=2)))
        ),
        "quarantined": orjson.dumps(
            world.scoring.sign(inference("quarantined", model="legacy-v0", digest="sha256:legacy"))
        ),
        "rogue-artifact": orjson.dumps(world.scoring.sign(inference("rogue-artifact", digest="sha256:evil"))),
        "ft-unapproved": orjson.dumps(
            world.platform.sign(fine_tune("ft-unapproved", "alice", approved=False))
        ),
        "ft-approved": orjson.dumps(world.platform.sign(fine_tune("ft-approved", "alice", approved=True))),
        "ft-mallory": orjson.dumps(world.platform.sign(fine_tune("ft-mallory", "mallory", approved=True))),
        "export-no-mfa": orjson.dumps(world.portal.sign(export("export-no-mfa", analyst_no_mfa, mfa=True))),
        "export-mfa": orjson.dumps(world.portal.sign(export("export-mfa", analyst_mfa, mfa=False))),
        "export-expired": orjson.dumps(world.portal.sign(export("export-expired", expired, mfa=True))),
    }
    topic = {"inference": "ai.inference", "training": "ai.training", "access": "ai.access"}
    messages = [(worker_env.topic(topic[orjson.loads(v)["type"]]), None, v) for v in events.values()]
    messages.append((worker_env.topic("ai.inference"), None, ok))  # the same bytes again: a replay
    asyncio.run(produce(worker_env.brokers, messages))
    worker_env.start_worker()
    worker_env.wait_until("SELECT count() FROM decisions_unique", len(events) + 1)
    worker_env.wait_until("SELECT count() FROM findings_unique WHERE detector_or_rule = 'identity-replay'", 1)

    rows = worker_env.sql(
        "SELECT d.event_id, d.decision, arrayStringConcat(d.policy_ids, ','), "
        "arrayStringConcat(d.controls, ','), e.verify_reason FROM decisions_unique d "
        "JOIN events_unique e USING (event_id, topic, partition, offset) "
        "WHERE e.verify_reason != 'replay' ORDER BY d.event_id"
    )
    got = {r[0]: (r[1], r[2], r[3].split(",") if r[3] else [], r[4]) for r in rows}
    expected = {
        "ok-infer": ("allow", "inference-by-serving-roles", "ok"),
        "unknown-key": ("deny", "zt-unverified-denied", "unknown_key"),
        "bad-sig": ("deny", "zt-unverified-denied", "bad_signature"),
        "stale": ("deny", "zt-unverified-denied", "stale"),
        "quarantined": ("deny", "inference-requires-approved-model", "ok"),
        "rogue-artifact": ("deny", "inference-artifact-matches-registry", "ok"),
        "ft-unapproved": ("deny", "fine-tune-requires-approval", "ok"),
        "ft-approved": ("allow", "fine-tune-by-ml-engineers", "ok"),
        "ft-mallory": ("deny", "default-deny", "ok"),
        "export-no-mfa": ("deny", "export-requires-mfa", "ok"),
        "export-mfa": ("allow", "export-by-analysts", "ok"),
        "export-expired": ("deny", "zt-unverified-denied", "token_expired"),
    }
    for event_id, (decision, policies, reason) in expected.items():
        assert got[event_id][0] == decision, (event_id, got[event_id])
        assert set(got[event_id][1].split(",")) == set(policies.split(",")), (event_id, got[event_id])
        assert got[event_id][3] == reason, (event_id, got[event_id])
    assert "iso-42001:A.10.3" in got["rogue-artifact"][2]
    assert "eu-ai-act:art-14" in got["ft-unapproved"][2]
    assert "nist-800-207:tenet-6" in got["export-no-mfa"][2]
    assert "nist-800-207:tenet-6" in got["bad-sig"][2]

    findings = {
        (r[0], r[1])
        for r in worker_env.sql(
            "SELECT event_id, detector_or_rule FROM findings_unique WHERE stage = 'identity'"
        )
    }
    assert {
        ("unknown-key", "identity-unknown-key"),
        ("bad-sig", "identity-bad-signature"),
        ("stale", "identity-stale"),
        ("export-expired", "identity-token-expired"),
        ("ok-infer", "identity-replay"),
    } <= findings
    replayed = worker_env.sql(
        "SELECT decision, verify_reason FROM decisions_unique d JOIN events_unique e "
        "USING (event_id, topic, partition, offset) WHERE event_id = 'ok-infer' ORDER BY verify_reason"
    )
    assert replayed == [["allow", "ok"], ["deny", "replay"]], "a replay is kept beside the original"
    roles = worker_env.sql(
        "SELECT arrayStringConcat(roles, ',') FROM decisions_unique WHERE event_id = 'export-mfa'"
    )
    assert roles == [["analyst"]], "roles come from the token and inventory, never the event's own claim"
    revision = worker_env.sql("SELECT DISTINCT bundle_revision FROM decisions_unique")
    assert len(revision) == 1
    assert len(revision[0][0]) == 16
