"""Signed traffic from a fleet the size of a real deployment, for benchmarks.

The demo (``vigil.demo``) tells a story with four models and eight principals; its
stream repeats about twenty distinct policy requests, so every cache in the pipeline
is always warm and per-key state never grows. A fleet has hundreds of models, thousands
of principals and datasets: caches miss, per-(model, feature) detector state exists
for every model, and the replay memory holds ids that never repeat. This generator
produces that shape, deterministically for a seed, with an inventory and keys that
make its ordinary traffic allowed (so decisions, findings and alerts are the few a
healthy fleet produces, not a flood).
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import yaml

from identity.signing import sign_document

SOURCES = 24
"""Producing services, one signing key each."""
ROLE_SHARE = (
    ("inference-client", "service", 0.30),
    ("labeler", "service", 0.05),
    ("analyst", "user", 0.40),
    ("data-engineer", "user", 0.15),
    ("ml-engineer", "user", 0.10),
)
"""(role, principal kind, share of principals)."""
MIX = (("inference", 0.62), ("feedback", 0.10), ("read", 0.22), ("write", 0.04), ("training", 0.02))
"""Share of ordinary events by kind."""


@dataclass(frozen=True)
class Fleet:
    """How many of each thing the traffic spans."""

    models: int = 200
    principals: int = 5000
    datasets: int = 2000
    features_per_model: int = 4


@dataclass
class FleetTraffic:
    """Ordinary, properly signed traffic over a ``Fleet``: one JSON line per event."""

    secrets_by_source: dict[str, bytes]
    fleet: Fleet = field(default_factory=Fleet)
    events: int = 100_000
    seed: int = 7
    start: datetime | None = None
    step: timedelta = timedelta(milliseconds=50)
    """Event time between consecutive events (50 ms: 100k events span ~83 min)."""

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._t0 = self.start or datetime.now(UTC) - self.step * self.events
        self._principals = principals(self.fleet)
        self._by_role: dict[str, list[str]] = {}
        for principal, (role, _kind) in self._principals.items():
            self._by_role.setdefault(role, []).append(principal)
        self._sources = sorted(self.secrets_by_source)
        self._kinds = [k for k, _ in MIX]
        self._weights = [w for _, w in MIX]

    def lines(self) -> Iterator[bytes]:
        for n in range(1, self.events + 1):
            yield self._signed(self._event(n))

    def _event(self, n: int) -> dict[str, Any]:
        kind = self._rng.choices(self._kinds, self._weights)[0]
        if kind == "inference":
            return self._inference(n)
        if kind == "feedback":
            return self._feedback(n)
        if kind == "training":
            return self._training(n)
        return self._access(n, kind)

    def _common(self, n: int, kind: str, role: str, action: str, resource: dict[str, str]) -> dict[str, Any]:
        principal = self._rng.choice(self._by_role[role])
        return {
            "event_id": f"fleet-{self.seed}-{n:09d}",
            "schema_version": 1,
            "type": kind,
            "ts": (self._t0 + self.step * n).isoformat(timespec="milliseconds"),
            "source": self._rng.choice(self._sources),
            "principal": {"id": principal, "kind": self._principals[principal][1], "roles": [role]},
            "action": action,
            "resource": resource,
        }

    def _model(self) -> int:
        # A few models carry most traffic, as in any fleet.
        return min(int(self._rng.paretovariate(1.0)) - 1, self.fleet.models - 1)

    def _inference(self, n: int) -> dict[str, Any]:
        rng, number = self._rng, self._model()
        model = model_id(number)
        doc = self._common(n, "inference", "inference-client", "infer", {"kind": "model", "id": model})
        features: dict[str, Any] = {
            f"f{k}": round(rng.gauss(10.0 * (k + 1) + number % 7, 2.0 + k), 3)
            for k in range(self.fleet.features_per_model)
        }
        features["channel"] = rng.choice(("web", "app", "pos", "api"))
        score = rng.random()
        doc.update(
            model_id=model,
            model_version="1",
            artifact_digest=artifact_digest(model),
            request_id=f"req-{n:09d}",
            features=features,
            prediction={"label": int(score > 0.5), "score": round(score, 4)},
            latency_ms=round(rng.lognormvariate(2.5, 0.3), 2),
            segment={"region": rng.choice(("eu", "us", "apac"))},
        )
        return doc

    def _feedback(self, n: int) -> dict[str, Any]:
        model = model_id(self._model())
        doc = self._common(n, "feedback", "labeler", "feedback", {"kind": "model", "id": model})
        doc.update(
            model_id=model, request_id=f"req-{max(1, n - 40):09d}", label=int(self._rng.random() < 0.3)
        )
        return doc

    def _access(self, n: int, action: str) -> dict[str, Any]:
        rng = self._rng
        role = "analyst" if action == "read" else "data-engineer"
        dataset = dataset_id(rng.randrange(self.fleet.datasets))
        doc = self._common(n, "access", role, action, {"kind": "dataset", "id": dataset})
        doc.update(
            outcome="allowed",
            client={"ip": f"10.{rng.randrange(4)}.{rng.randrange(256)}.{rng.randrange(2, 250)}"},
            mfa=True,
            records=rng.randint(1, 5000),
        )
        return doc

    def _training(self, n: int) -> dict[str, Any]:
        rng = self._rng
        model = model_id(self._model())
        dataset = dataset_id(rng.randrange(self.fleet.datasets))
        doc = self._common(n, "training", "ml-engineer", "train", {"kind": "model", "id": model})
        doc.update(
            run_id=f"run-{n:09d}",
            model_id=model,
            dataset_id=dataset,
            dataset_digest=dataset_digest(dataset),
            code_commit="4f1c2e9",
            artifact_digest=artifact_digest(model),
            metrics={"auc": round(0.9 + rng.random() / 20, 4)},
        )
        return doc

    def _signed(self, document: dict[str, Any]) -> bytes:
        source = document["source"]
        return orjson.dumps(sign_document(document, key_id(source), self.secrets_by_source[source]))


def model_id(number: int) -> str:
    return f"model-{number:04d}"


def dataset_id(number: int) -> str:
    return f"dataset-{number:05d}"


def artifact_digest(model: str) -> str:
    return f"sha256:{model}-build-1"


def dataset_digest(dataset: str) -> str:
    return f"sha256:{dataset}-snapshot-1"


def key_id(source: str) -> str:
    return f"{source}-fleet"


def principals(fleet: Fleet) -> dict[str, tuple[str, str]]:
    """Principal id -> (role, kind), in the shares of ``ROLE_SHARE``."""
    out: dict[str, tuple[str, str]] = {}
    for role, kind, share in ROLE_SHARE:
        prefix = "svc" if kind == "service" else "user"
        for k in range(max(1, round(fleet.principals * share))):
            out[f"{prefix}-{role}-{k:05d}"] = (role, kind)
    return out


def inventory(fleet: Fleet) -> dict[str, Any]:
    """Every principal, model and dataset of the fleet, in good standing."""
    return {
        "principals": [
            {"id": p, "kind": kind, "roles": [role]} for p, (role, kind) in principals(fleet).items()
        ],
        "models": [
            {"id": m, "owner": "ml-platform", "status": "approved", "artifact_digest": artifact_digest(m)}
            for m in map(model_id, range(fleet.models))
        ],
        "datasets": [
            {
                "id": d,
                "classification": ("internal", "confidential", "public")[k % 3],
                "approved": True,
                "digests": [dataset_digest(d)],
            }
            for k, d in enumerate(map(dataset_id, range(fleet.datasets)))
        ],
    }


def write_inventory(path: Path, fleet: Fleet) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(inventory(fleet), sort_keys=False))


def write_keys(path: Path) -> dict[str, bytes]:
    """One HMAC key per source (file mode 0600); returns the secrets by source."""
    by_source = {f"service-{k:02d}": secrets.token_bytes(32) for k in range(SOURCES)}
    keys = [
        {"key_id": key_id(source), "alg": "hmac-sha256", "secret": "hex:" + secret.hex(), "sources": [source]}
        for source, secret in by_source.items()
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(yaml.safe_dump({"keys": keys}, sort_keys=False))
    return by_source
