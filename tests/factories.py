"""Builders shared by the unit and property tests.

Events are plain dicts shaped like the ones ``vigil.demo`` produces; ``signed`` and
``encode`` turn them into the bytes a producer would put on the wire. The test
keyring holds one key per source, each written in a different secret notation
(``hex:``, ``base64:`` and plain text) so every decoding path is exercised.
"""

from __future__ import annotations

import base64
import copy
import itertools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import yaml

from identity.keyring import KeyEntry, Keyring, load_keyring, secret_bytes
from identity.signing import sign_document
from schemas.records import FindingRow


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
    return (datetime.now(UTC) + offset).isoformat(timespec="milliseconds")


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
    return Keyring(parsed, {k: secret_bytes(e.secret) for k, e in parsed.items()})


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
        artifact_digest=f"sha256:{model_id}-0f3a9c",
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
        dataset_id="transactions-2026",
        dataset_digest="sha256:ds-77ab01",
        code_commit="4f1c2e9",
        artifact_digest=f"sha256:{model_id}-0f3a9c",
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
        resource=resource or {"kind": "dataset", "id": "transactions-2026"},
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
) -> FindingRow:
    event_id = event_id or _next_id("evt")
    return FindingRow(
        finding_id=f"f-{event_id}",
        ts=datetime.now(UTC),
        event_id=event_id,
        model_id=model_id,
        principal_id=principal_id,
        stage=stage,
        detector_or_rule=rule,
        severity=severity,
        message=f"{rule} on {model_id}",
        details="{}",
    )
