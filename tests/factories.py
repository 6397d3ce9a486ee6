"""Builders shared by the unit and property tests.

Events are plain dicts shaped like the ones ``vigil.demo`` produces; ``signed`` and
``encode`` turn them into the bytes a producer would put on the wire. The test
keyring holds one HMAC key per source, each written in a different secret notation
(``hex:``, ``base64:`` and plain text) so every decoding path is exercised; Ed25519
key pairs are generated per test, the monitor only ever getting the public half.

``INVENTORY`` grants the roles the event builders' principals claim by default and
registers the models and datasets they name, so a default event is allowed by the
bundled pack and each test varies one thing. ``TokenIssuer`` plays the company IdP:
it signs JWTs and publishes its public key as a JWKS file.
"""

from __future__ import annotations

import base64
import copy
import itertools
import json
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import jwt
import orjson
import yaml
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from identity.keyring import KeyEntry, Keyring, load_keyring
from identity.signing import sign_document
from identity.tokens import TokenVerifier
from policies.inventory import Inventory, load_inventory
from schemas.events import EVENT_ADAPTER, Event
from schemas.records import FindingRow
from tests.clock import wall_now


@dataclass(frozen=True)
class SigningKey:
    key_id: str
    secret: bytes
    notation: str
    sources: tuple[str, ...]

    @property
    def yaml_secret(self) -> str:
        if self.notation == "hex":
            return "hex:" + self.secret.hex()
        if self.notation == "base64":
            return "base64:" + base64.b64encode(self.secret).decode()
        return self.secret.decode()


KEYS: dict[str, SigningKey] = {
    "checkout-api": SigningKey(
        "checkout-2026", bytes(range(32, 64)), "hex", ("checkout-api", "checkout-batch")
    ),
    "lending-api": SigningKey("lending-2026", bytes(range(100, 140)), "base64", ("lending-api",)),
    "labeling": SigningKey("labeling-2026", b"labeling-plain-text-secret-0001", "plain", ("labeling",)),
    "ml-platform": SigningKey("ml-platform-2026", b"\x01" * 16 + b"ml-platform", "hex", ("ml-platform",)),
    "data-portal": SigningKey("data-portal-2026", b"data-portal-secret-value-xyz", "plain", ("data-portal",)),
}
"""Test keys by the source they sign for."""

FORGER_SECRET = b"definitely-not-any-registered-secret"

_counter = itertools.count(1)


def now_iso(offset: timedelta = timedelta(0)) -> str:
    return (wall_now() + offset).isoformat(timespec="milliseconds")


def _next_id(prefix: str) -> str:
    return f"{prefix}-{next(_counter):07d}"


def key_entries(keys: dict[str, SigningKey] | None = None) -> list[dict[str, Any]]:
    return [
        {
            "key_id": key.key_id,
            "alg": "hmac-sha256",
            "secret": key.yaml_secret,
            "sources": list(key.sources),
        }
        for key in (keys or KEYS).values()
    ]


def write_keyfile(path: Path, entries: list[dict[str, Any]]) -> Path:
    path.write_text(yaml.safe_dump({"keys": entries}, sort_keys=False), encoding="utf-8")
    return path


def make_keyring(directory: Path, entries: list[dict[str, Any]] | None = None) -> Keyring:
    """Write a key file into ``directory`` and load it the way the service does."""
    path = write_keyfile(directory / "keys.yaml", key_entries() if entries is None else entries)
    return load_keyring(path)


def direct_keyring(entries: list[dict[str, Any]] | None = None) -> Keyring:
    """The same keyring as ``make_keyring`` but built in memory (no file needed)."""
    parsed = {e["key_id"]: KeyEntry(**e) for e in (key_entries() if entries is None else entries)}
    return Keyring(parsed)


# --- Ed25519: the producer keeps the private key, the key file holds the public one ----


def ed25519_key_pair() -> tuple[Ed25519PrivateKey, Ed25519PublicKey]:
    private = Ed25519PrivateKey.generate()
    return private, private.public_key()


def ed25519_public_text(public: Ed25519PublicKey, notation: str = "base64") -> str:
    """The public key as the key file spells it: ``base64:``/``hex:`` raw bytes or PEM."""
    if notation == "pem":
        return public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()
    raw = public.public_bytes(Encoding.Raw, PublicFormat.Raw)
    if notation == "hex":
        return "hex:" + raw.hex()
    return "base64:" + base64.b64encode(raw).decode()


def ed25519_entry(
    key_id: str,
    public: Ed25519PublicKey,
    sources: tuple[str, ...] = ("edge-api",),
    notation: str = "base64",
    **fields: Any,
) -> dict[str, Any]:
    """A key file entry for an Ed25519 key: public material only."""
    return {
        "key_id": key_id,
        "alg": "ed25519",
        "public_key": ed25519_public_text(public, notation),
        "sources": list(sources),
        **fields,
    }


# --- the inventory the default events are judged with ----------------------------------


def artifact_digest(model_id: str) -> str:
    """The digest the builders put on a model's events and the inventory registers."""
    return f"sha256:{model_id}-0f3a9c"


TRAINING_DATASET = "transactions-2026"
TRAINING_DATASET_DIGEST = "sha256:ds-77ab01"
PII_DATASET = "customers-pii"
PII_DATASET_DIGEST = "sha256:pii-19c2d4"
UNAPPROVED_DATASET = "scraped-web"
QUARANTINED_MODEL = "legacy-scorer"

INVENTORY: dict[str, Any] = {
    "principals": [
        {"id": "svc-checkout", "kind": "service", "roles": ["inference-client"]},
        {"id": "svc-lending", "kind": "service", "roles": ["inference-client"]},
        {"id": "svc-labeler", "kind": "service", "roles": ["labeler"]},
        {"id": "alice", "kind": "user", "roles": ["ml-engineer"]},
        {"id": "rita", "kind": "user", "roles": ["release-manager"]},
        {"id": "ravi", "kind": "user", "roles": ["release-manager"]},
        {"id": "bob", "kind": "user", "roles": ["analyst"]},
        {"id": "carol", "kind": "user", "roles": ["data-engineer"]},
        {"id": "mallory", "kind": "user", "roles": ["contractor"]},
    ],
    "models": [
        {
            "id": "fraud-v3",
            "owner": "alice",
            "status": "approved",
            "artifact_digest": artifact_digest("fraud-v3"),
        },
        {
            "id": "credit-v2",
            "owner": "alice",
            "status": "approved",
            "artifact_digest": artifact_digest("credit-v2"),
            "evaluation_min": {"auc": 0.9},
            "fairness_max": {"demographic_parity_difference": 0.1},
        },
        {
            "id": QUARANTINED_MODEL,
            "owner": "alice",
            "status": "quarantined",
            "artifact_digest": artifact_digest(QUARANTINED_MODEL),
        },
        {
            "id": "churn-v1",
            "owner": "alice",
            "status": "pending",
            "artifact_digest": artifact_digest("churn-v1"),
        },
        {
            "id": "ranker-v0",
            "owner": "alice",
            "status": "retired",
            "artifact_digest": artifact_digest("ranker-v0"),
        },
    ],
    "datasets": [
        {
            "id": TRAINING_DATASET,
            "classification": "confidential",
            "approved": True,
            "digests": [TRAINING_DATASET_DIGEST],
        },
        {
            "id": PII_DATASET,
            "classification": "pii",
            "approved": True,
            "approval_ticket": "DPA-0007",
            "digests": [PII_DATASET_DIGEST],
        },
        {"id": UNAPPROVED_DATASET, "classification": "public", "approved": False},
    ],
    "calendar": {
        "timezone": "UTC",
        "business_hours": ["07:00", "19:00"],
        "weekdays": ["mon", "tue", "wed", "thu", "fri"],
    },
}
"""Roles for every principal the builders use by default (mallory only holds
``contractor``, which no policy grants anything); fraud-v3 and credit-v2 approved with
the digests the builders send, credit-v2 with release thresholds (auc at least 0.9, a
demographic parity difference of at most 0.1); one quarantined, one pending and one retired model; an
approved training dataset, an approved PII dataset and an unapproved one."""


def inventory_data(**sections: Any) -> dict[str, Any]:
    """A deep copy of ``INVENTORY`` with whole top-level sections replaced."""
    data = copy.deepcopy(INVENTORY)
    data.update(copy.deepcopy(sections))
    return data


def with_principals(*extra: dict[str, Any]) -> dict[str, Any]:
    """``INVENTORY`` plus more principals."""
    data = inventory_data()
    data["principals"] += [dict(p) for p in extra]
    return data


def write_inventory(path: Path, data: dict[str, Any] | None = None) -> Path:
    path.write_text(yaml.safe_dump(INVENTORY if data is None else data, sort_keys=False), encoding="utf-8")
    return path


def make_inventory(directory: Path, data: dict[str, Any] | None = None) -> Inventory:
    """Write an inventory file into ``directory`` and load it the way the service does."""
    return load_inventory(write_inventory(directory / "inventory.yaml", data))


def build_inventory(data: dict[str, Any] | None = None) -> Inventory:
    """``make_inventory`` for callers without a directory (module-level fixtures)."""
    with tempfile.TemporaryDirectory() as directory:
        return make_inventory(Path(directory), data)


# --- bearer tokens: a stand-in for the company IdP --------------------------------------

ISSUER = "https://idp.example.test/"
AUDIENCE = "vigil"


@dataclass
class TokenIssuer:
    """Signs JWTs with a fresh key pair and publishes the public key as a JWK."""

    kid: str = "idp-2026"
    alg: Literal["ES256", "RS256"] = "ES256"
    issuer: str = ISSUER
    audience: str = AUDIENCE
    _key: Any = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.alg == "ES256":
            self._key = ec.generate_private_key(ec.SECP256R1())
        else:
            self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def jwk(self) -> dict[str, Any]:
        algorithm = ECAlgorithm if self.alg == "ES256" else RSAAlgorithm
        public = algorithm.to_jwk(self._key.public_key(), as_dict=True)
        return {**public, "kid": self.kid, "alg": self.alg, "use": "sig"}

    def token(
        self,
        sub: str,
        *,
        at: datetime | None = None,
        lifetime: timedelta = timedelta(hours=1),
        roles: list[Any] | None = None,
        amr: list[str] | None = None,
        exp: datetime | None = None,
        nbf: datetime | None = None,
        iss: str | None = None,
        aud: str | None = None,
        kid: str | None = "",
        claims: dict[str, Any] | None = None,
    ) -> str:
        """A token for ``sub`` issued at ``at`` (default now) and valid for ``lifetime``.

        ``kid=None`` leaves the key id out of the header; ``claims`` adds or overrides
        raw claims (a value of ``None`` removes the claim).
        """
        issued = at or wall_now()
        payload: dict[str, Any] = {
            "iss": self.issuer if iss is None else iss,
            "aud": self.audience if aud is None else aud,
            "sub": sub,
            "iat": int(issued.timestamp()),
            "exp": int((exp or issued + lifetime).timestamp()),
        }
        if nbf is not None:
            payload["nbf"] = int(nbf.timestamp())
        if roles is not None:
            payload["roles"] = roles
        if amr is not None:
            payload["amr"] = amr
        for name, value in (claims or {}).items():
            if value is None:
                payload.pop(name, None)
            else:
                payload[name] = value
        headers = {} if kid is None else {"kid": kid or self.kid}
        return jwt.encode(payload, self._key, algorithm=self.alg, headers=headers)


def write_jwks(path: Path, *issuers: TokenIssuer) -> Path:
    path.write_text(json.dumps({"keys": [issuer.jwk() for issuer in issuers]}), encoding="utf-8")
    return path


def make_token_verifier(directory: Path, *issuers: TokenIssuer, **options: Any) -> TokenVerifier:
    """A verifier trusting ``issuers`` (one fresh ES256 issuer when none is given)."""
    path = write_jwks(directory / "jwks.json", *(issuers or (TokenIssuer(),)))
    return TokenVerifier(str(path), issuer=ISSUER, audience=AUDIENCE, **options)


def _common(
    kind: str,
    *,
    source: str,
    principal: str,
    principal_kind: str,
    roles: tuple[str, ...],
    action: str,
    resource: dict[str, str],
    ts: str | None,
    event_id: str | None,
) -> dict[str, Any]:
    return {
        "event_id": event_id or _next_id(kind),
        "schema_version": 1,
        "type": kind,
        "ts": ts or now_iso(timedelta(minutes=-5)),
        "source": source,
        "principal": {"id": principal, "kind": principal_kind, "roles": list(roles)},
        "action": action,
        "resource": resource,
    }


def inference_doc(
    *,
    model_id: str = "fraud-v3",
    features: dict[str, Any] | None = None,
    source: str = "checkout-api",
    principal: str = "svc-checkout",
    roles: tuple[str, ...] = ("inference-client",),
    ts: str | None = None,
    event_id: str | None = None,
    **fields: Any,
) -> dict[str, Any]:
    doc = _common(
        "inference",
        source=source,
        principal=principal,
        principal_kind="service",
        roles=roles,
        action="infer",
        resource={"kind": "model", "id": model_id, "version": "3"},
        ts=ts,
        event_id=event_id,
    )
    doc.update(
        model_id=model_id,
        model_version="3",
        artifact_digest=artifact_digest(model_id),
        request_id=_next_id("req"),
        features=(
            {"amount": 42.5, "merchant_risk": 0.18, "country": "DE", "card_present": True}
            if features is None
            else features
        ),
        prediction={"label": 0, "score": 0.12},
        latency_ms=12.4,
        segment={"region": "eu"},
    )
    doc.update(fields)
    return doc


def feedback_doc(
    *,
    model_id: str = "fraud-v3",
    source: str = "labeling",
    principal: str = "svc-labeler",
    roles: tuple[str, ...] = ("labeler",),
    ts: str | None = None,
    event_id: str | None = None,
    **fields: Any,
) -> dict[str, Any]:
    doc = _common(
        "feedback",
        source=source,
        principal=principal,
        principal_kind="service",
        roles=roles,
        action="feedback",
        resource={"kind": "model", "id": model_id},
        ts=ts,
        event_id=event_id,
    )
    doc.update(model_id=model_id, request_id=_next_id("req"), label=1)
    doc.update(fields)
    return doc


def training_doc(
    *,
    action: str = "train",
    approved: bool = True,
    model_id: str = "fraud-v3",
    source: str = "ml-platform",
    principal: str = "alice",
    roles: tuple[str, ...] = ("ml-engineer",),
    ts: str | None = None,
    event_id: str | None = None,
    **fields: Any,
) -> dict[str, Any]:
    doc = _common(
        "training",
        source=source,
        principal=principal,
        principal_kind="user",
        roles=roles,
        action=action,
        resource={"kind": "model", "id": model_id},
        ts=ts,
        event_id=event_id,
    )
    doc.update(
        run_id=_next_id("run"),
        model_id=model_id,
        dataset_id=TRAINING_DATASET,
        dataset_digest=TRAINING_DATASET_DIGEST,
        code_commit="4f1c2e9",
        artifact_digest=artifact_digest(model_id),
        metrics={"auc": 0.93},
    )
    if approved:
        doc["approval"] = {"ticket": "CHG-1042", "approver": "dana"}
    doc.update(fields)
    return doc


def access_doc(
    *,
    action: str = "read",
    mfa: bool = True,
    source: str = "data-portal",
    principal: str = "bob",
    roles: tuple[str, ...] = ("analyst",),
    resource: dict[str, str] | None = None,
    ts: str | None = None,
    event_id: str | None = None,
    **fields: Any,
) -> dict[str, Any]:
    doc = _common(
        "access",
        source=source,
        principal=principal,
        principal_kind="user",
        roles=roles,
        action=action,
        resource=resource or {"kind": "dataset", "id": TRAINING_DATASET},
        ts=ts,
        event_id=event_id,
    )
    doc.update(
        outcome="allowed",
        client={"ip": "10.0.4.17", "user_agent": "portal/2.1"},
        mfa=mfa,
        records=120,
    )
    doc.update(fields)
    return doc


BUILDERS = {
    "inference": inference_doc,
    "feedback": feedback_doc,
    "training": training_doc,
    "access": access_doc,
}


def signed(document: dict[str, Any], key: SigningKey | None = None) -> dict[str, Any]:
    """Sign with the registered key of the document's source (or ``key``)."""
    key = key or KEYS[document["source"]]
    return sign_document(document, key.key_id, key.secret)


def forged(document: dict[str, Any]) -> dict[str, Any]:
    """Signed under the right key id but with a secret the keyring does not hold."""
    return sign_document(document, KEYS[document["source"]].key_id, FORGER_SECRET)


def encode(document: dict[str, Any]) -> bytes:
    return orjson.dumps(document)


def event_of(document: dict[str, Any]) -> Event:
    """The event a document becomes on the wire: parsed from its JSON bytes, as decode does."""
    return EVENT_ADAPTER.validate_json(encode(document))


def signed_bytes(document: dict[str, Any]) -> bytes:
    return encode(signed(document))


def with_changes(document: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A deep copy with top-level members replaced."""
    changed = copy.deepcopy(document)
    changed.update(changes)
    return changed


def finding(
    *,
    stage: str = "policy",
    rule: str = "default-deny",
    severity: str = "high",
    model_id: str = "fraud-v3",
    principal_id: str = "bob",
    event_id: str | None = None,
    ts: datetime | None = None,
    resource_kind: str = "",
    resource_id: str = "",
    key_id: str = "",
) -> FindingRow:
    """``ts`` is the producer's clock; by default it agrees with the test's clock."""
    event_id = event_id or _next_id("evt")
    return FindingRow(
        finding_id=f"f-{event_id}",
        ts=ts or wall_now(),
        event_id=event_id,
        model_id=model_id,
        principal_id=principal_id,
        stage=stage,
        detector_or_rule=rule,
        severity=severity,
        message=f"{rule} on {model_id}",
        details="{}",
        resource_kind=resource_kind,
        resource_id=resource_id,
        key_id=key_id,
    )
