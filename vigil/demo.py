"""Realistic traffic for ``vigil demo``: a few models, principals and incidents.

The stream is deterministic for a seed. Most of it is ordinary, properly signed
traffic; woven in are the incidents the demo should surface: a forged event, a
fine-tune without approval, one by a principal without the role, an export without
MFA, a feature that drifts two thirds of the way through, and malformed messages.
"""

from __future__ import annotations

import random
import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import yaml

from audit.config import export_dir
from identity.signing import sign_document
from sinks.clickhouse import StoreLockedError, is_locked
from vigil.settings import Settings

DEMO_SOURCES = {
    "checkout-api": ["svc-checkout"],
    "lending-api": ["svc-lending"],
    "assistant-api": ["svc-assistant"],
    "labeling": ["svc-labeler"],
    "ml-platform": ["alice", "mallory"],
    "data-portal": ["bob", "carol"],
}
_ROLES = {
    "svc-checkout": ("inference-client",),
    "svc-lending": ("inference-client",),
    "svc-assistant": ("inference-client",),
    "svc-labeler": ("labeler",),
    "alice": ("ml-engineer",),
    "mallory": ("contractor",),
    "bob": ("analyst",),
    "carol": ("data-engineer",),
}


DEMO_INVENTORY: dict[str, Any] = {
    "principals": [
        {"id": principal, "kind": "service" if principal.startswith("svc-") else "user", "roles": list(roles)}
        for principal, roles in _ROLES.items()
    ],
    "models": [
        {
            "id": "fraud-v3",
            "owner": "alice",
            "status": "approved",
            "artifact_digest": "sha256:fraud-v3-0f3a9c",
        },
        {
            "id": "credit-v2",
            "owner": "alice",
            "status": "approved",
            "artifact_digest": "sha256:credit-v2-0f3a9c",
        },
        {
            "id": "assistant-llm",
            "owner": "alice",
            "status": "approved",
            "artifact_digest": "sha256:assistant-llm-0f3a9c",
        },
        {
            "id": "legacy-scorer",
            "owner": "alice",
            "status": "quarantined",
            "artifact_digest": "sha256:legacy-1",
        },
    ],
    "datasets": [
        {
            "id": "transactions-2026",
            "classification": "confidential",
            "approved": True,
            "digests": ["sha256:ds-77ab01"],
        },
        {"id": "customers-pii", "classification": "pii", "approved": False},
    ],
}


def write_demo_inventory(path: Path) -> None:
    """The demo's principals, roles, models and datasets, unless the file exists."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(DEMO_INVENTORY, sort_keys=False))


class DemoKeysError(ValueError):
    """The key file is not the demo's: the demo signs its own traffic with keys it wrote."""


def write_demo_keys(path: Path) -> dict[str, bytes]:
    """One key per source, written to ``path`` (mode 0600) unless it exists."""
    if not path.exists():
        keys = [
            {
                "key_id": f"{source}-demo",
                "alg": "hmac-sha256",
                "secret": "hex:" + secrets.token_hex(32),
                "sources": [source],
            }
            for source in DEMO_SOURCES
        ]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(yaml.safe_dump({"keys": keys}, sort_keys=False))
    return _demo_secrets(path)


def _demo_secrets(path: Path) -> dict[str, bytes]:
    """The HMAC secret of each demo source, from a key file the demo wrote."""
    try:
        loaded = yaml.safe_load(path.read_text())
        entries = loaded["keys"] if isinstance(loaded, dict) else []
        found = {
            entry["key_id"]: bytes.fromhex(entry["secret"].removeprefix("hex:"))
            for entry in entries
            if isinstance(entry, dict) and str(entry.get("secret", "")).startswith("hex:")
        }
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError) as error:
        raise DemoKeysError(f"{path}: not a key file the demo can use ({error})") from None
    missing = [source for source in DEMO_SOURCES if f"{source}-demo" not in found]
    if missing:
        raise DemoKeysError(
            f"{path} has no demo key for {', '.join(missing)}: the demo signs its own traffic; run it in "
            "a data directory of its own (VIGIL_DATA_DIR=vigil-demo, VIGIL_KEYS_FILE unset)"
        )
    return {source: found[f"{source}-demo"] for source in DEMO_SOURCES}


def earlier_run(settings: Settings) -> Path | None:
    """The embedded store an earlier run left in the data directory, if any."""
    if settings.store_url == "chdb://memory":
        return None
    store = Path(settings.store_url.removeprefix("chdb://"))
    return store if store.is_dir() else None


def start_fresh(settings: Settings) -> list[Path]:
    """Delete what an earlier demo left and a new one would add to; return what was removed.

    The store, the alert state and the exported audit checkpoints go together: exported
    checkpoints of a deleted ledger would make ``vigil audit verify`` fail. The key file,
    the inventory and the audit signing key stay, so published keys remain valid.
    """
    store = earlier_run(settings)
    if store is not None and is_locked(store):
        raise StoreLockedError(f"{store} is in use by another process")
    alerting = settings.alerting.state_dir or settings.data_dir / "alerting"
    removed = [path for path in (store, alerting, export_dir(settings)) if path is not None and path.is_dir()]
    for path in removed:
        shutil.rmtree(path)
    return removed


@dataclass
class DemoTraffic:
    secrets_by_source: dict[str, bytes]
    events: int = 6000
    seed: int = 7
    start: datetime | None = None

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._t0 = self.start or datetime.now(UTC) - timedelta(hours=1)
        self._n = 0

    def lines(self) -> Iterator[bytes]:
        """JSON lines in arrival order, incidents included."""
        drift_from = int(self.events * 2 / 3)
        incidents = self._incidents()
        incident_at = {int(self.events * f): line for f, line in incidents}
        for i in range(self.events):
            if i in incident_at:
                yield incident_at[i]
            yield self._ordinary(i, drifting=i >= drift_from)

    def _ordinary(self, i: int, drifting: bool) -> bytes:
        roll = self._rng.random()
        if roll < 0.55:
            return self._signed(self._fraud_inference(drifting))
        if roll < 0.75:
            return self._signed(self._credit_inference())
        if roll < 0.85:
            return self._signed(self._assistant_inference())
        if roll < 0.93:
            return self._signed(self._feedback())
        if roll < 0.99:
            return self._signed(self._read_access())
        return self._signed(self._training("alice", "train", approved=True))

    def _incidents(self) -> list[tuple[float, bytes]]:
        forged = self._fraud_inference(False)
        forged["principal"] = {"id": "svc-checkout", "kind": "service", "roles": ["inference-client"]}
        forged_line = self._signed(forged, secret=b"not-the-checkout-key-at-all-0000")
        oversize = self._fraud_inference(False)
        oversize["features"] = {f"f{k}": float(k) for k in range(400)}
        oversize["segment"] = {"note": "x" * 200}
        return [
            (0.10, forged_line),
            (0.15, b'{"event_id": "broken-1", "type": "inference", '),
            (0.20, self._signed(self._training("mallory", "fine_tune", approved=True))),
            (0.25, orjson.dumps({"event_id": "no-fields", "schema_version": 1, "type": "access"})),
            (0.30, self._signed(self._training("alice", "fine_tune", approved=False))),
            (0.35, orjson.dumps({**self._read_access(), "type": "telemetry"})),
            (0.40, self._signed(self._export(mfa=False))),
            (0.45, self._signed(self._export(mfa=True))),
            (0.50, orjson.dumps(oversize) + b" " * 65536),
            (0.55, self._signed(self._quarantined_inference())),
            (0.60, self._signed(self._rogue_artifact_inference())),
        ]

    def _signed(self, document: dict[str, Any], secret: bytes | None = None) -> bytes:
        source = document["source"]
        signed = sign_document(document, f"{source}-demo", secret or self.secrets_by_source[source])
        return orjson.dumps(signed)

    def _common(
        self, kind: str, source: str, principal: str, action: str, resource: dict[str, str]
    ) -> dict[str, Any]:
        self._n += 1
        return {
            "event_id": f"demo-{self.seed}-{self._n:07d}",
            "schema_version": 1,
            "type": kind,
            "ts": (self._t0 + timedelta(milliseconds=300 * self._n)).isoformat(timespec="milliseconds"),
            "source": source,
            "principal": {
                "id": principal,
                "kind": "service" if principal.startswith("svc-") else "user",
                "roles": list(_ROLES[principal]),
            },
            "action": action,
            "resource": resource,
        }

    def _inference(
        self,
        source: str,
        principal: str,
        model: str,
        features: dict[str, Any],
        score: float,
        segment: dict[str, str],
    ) -> dict[str, Any]:
        rng = self._rng
        doc = self._common(
            "inference", source, principal, "infer", {"kind": "model", "id": model, "version": "3"}
        )
        doc.update(
            model_id=model,
            model_version="3",
            artifact_digest=f"sha256:{model}-0f3a9c",
            request_id=f"req-{self._n:07d}",
            features=features,
            prediction={"label": int(score > 0.5), "score": round(score, 4)},
            latency_ms=round(rng.lognormvariate(2.5, 0.3), 2),
            segment=segment,
        )
        return doc

    def _quarantined_inference(self) -> dict[str, Any]:
        doc = self._fraud_inference(False)
        doc["resource"]["id"] = doc["model_id"] = "legacy-scorer"
        doc["artifact_digest"] = "sha256:legacy-1"
        return doc

    def _rogue_artifact_inference(self) -> dict[str, Any]:
        doc = self._fraud_inference(False)
        doc["artifact_digest"] = "sha256:fraud-v3-unregistered-build"
        return doc

    def _fraud_inference(self, drifting: bool) -> dict[str, Any]:
        rng = self._rng
        amount = rng.lognormvariate(3.6 + (1.2 if drifting else 0.0), 0.5)
        merchant_risk = round(rng.betavariate(2, 8), 4)
        features = {
            "amount": round(amount, 2),
            "merchant_risk": merchant_risk,
            "country": rng.choice(["DE", "FR", "US", "NL", "ES"]),
            "card_present": rng.random() < 0.7,
        }
        score = min(1.0, merchant_risk * 2 + amount / 2000)
        return self._inference(
            "checkout-api", "svc-checkout", "fraud-v3", features, score, {"region": rng.choice(["eu", "us"])}
        )

    def _credit_inference(self) -> dict[str, Any]:
        rng = self._rng
        features = {
            "income": round(rng.gauss(52000, 12000), 0),
            "debt_ratio": round(rng.betavariate(2, 5), 3),
        }
        score = max(0.0, min(1.0, features["income"] / 100000 - features["debt_ratio"] / 2 + 0.3))
        segment = {"age_band": rng.choice(["18-30", "31-50", "51+"]), "sex": rng.choice(["f", "m"])}
        return self._inference("lending-api", "svc-lending", "credit-v2", features, score, segment)

    def _assistant_inference(self) -> dict[str, Any]:
        rng = self._rng
        doc = self._inference(
            "assistant-api",
            "svc-assistant",
            "assistant-llm",
            {"prompt_chars": rng.randint(40, 2000)},
            rng.random(),
            {},
        )
        doc["tokens"] = {"prompt": rng.randint(20, 800), "completion": rng.randint(20, 400)}
        return doc

    def _feedback(self) -> dict[str, Any]:
        doc = self._common(
            "feedback", "labeling", "svc-labeler", "feedback", {"kind": "model", "id": "fraud-v3"}
        )
        doc.update(
            model_id="fraud-v3",
            request_id=f"req-{max(1, self._n - 50):07d}",
            label=int(self._rng.random() < 0.1),
        )
        return doc

    def _read_access(self) -> dict[str, Any]:
        rng = self._rng
        doc = self._common(
            "access", "data-portal", "bob", "read", {"kind": "dataset", "id": "transactions-2026"}
        )
        doc.update(
            outcome="allowed",
            client={"ip": f"10.0.4.{rng.randint(2, 40)}", "user_agent": "portal/2.1"},
            mfa=True,
            records=rng.randint(1, 500),
        )
        return doc

    def _export(self, mfa: bool) -> dict[str, Any]:
        doc = self._common(
            "access", "data-portal", "bob", "export", {"kind": "dataset", "id": "customers-pii"}
        )
        doc.update(
            outcome="allowed",
            client={"ip": "10.0.4.17", "user_agent": "portal/2.1"},
            mfa=mfa,
            records=250000,
            bytes=48_000_000,
        )
        return doc

    def _training(self, principal: str, action: str, approved: bool) -> dict[str, Any]:
        doc = self._common("training", "ml-platform", principal, action, {"kind": "model", "id": "fraud-v3"})
        doc.update(
            run_id=f"run-{self._n:05d}",
            model_id="fraud-v3",
            dataset_id="transactions-2026",
            dataset_digest="sha256:ds-77ab01",
            code_commit="4f1c2e9",
            artifact_digest="sha256:fraud-v3-0f3a9c",
            metrics={"auc": round(0.9 + self._rng.random() / 20, 4)},
        )
        if approved:
            doc["approval"] = {"ticket": "CHG-1042", "approver": "dana"}
        return doc
