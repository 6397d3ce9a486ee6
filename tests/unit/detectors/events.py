"""Validated events for detector tests, with explicit times (detectors judge by ``ts``)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from schemas.events import EVENT_ADAPTER, AccessEvent, FeedbackEvent, InferenceEvent, TrainingEvent

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
_ids = itertools.count(1)


def _common(kind: str, principal: str, action: str, resource: dict[str, str], ts: datetime) -> dict[str, Any]:
    return {
        "event_id": f"{kind}-{next(_ids):08d}",
        "schema_version": 1,
        "type": kind,
        "ts": ts.isoformat(),
        "source": "tests",
        "principal": {
            "id": principal,
            "kind": "service" if principal.startswith("svc") else "user",
            "roles": [],
        },
        "action": action,
        "resource": resource,
    }


def inference(
    *,
    model_id: str = "fraud-v3",
    features: dict[str, Any] | None = None,
    score: float | None = 0.5,
    label: Any = None,
    latency_ms: float = 12.0,
    segment: dict[str, str] | None = None,
    digest: str | None = None,
    request_id: str | None = None,
    tokens: dict[str, int] | None = None,
    at: int = 0,
) -> InferenceEvent:
    doc = _common(
        "inference", "svc-scoring", "infer", {"kind": "model", "id": model_id}, T0 + timedelta(seconds=at)
    )
    doc.update(
        model_id=model_id,
        model_version="3",
        artifact_digest=digest or f"sha256:{model_id}-0f3a9c",
        request_id=request_id or f"req-{next(_ids)}",
        features=features if features is not None else {"amount": 42.0},
        prediction={"score": score, "label": label},
        latency_ms=latency_ms,
        segment=segment or {},
    )
    if tokens is not None:
        doc["tokens"] = tokens
    event = EVENT_ADAPTER.validate_json(orjson.dumps(doc))
    assert isinstance(event, InferenceEvent)
    return event


def feedback(request_id: str, label: Any, *, model_id: str = "fraud-v3", at: int = 0) -> FeedbackEvent:
    doc = _common(
        "feedback", "svc-labeler", "feedback", {"kind": "model", "id": model_id}, T0 + timedelta(seconds=at)
    )
    doc.update(model_id=model_id, request_id=request_id, label=label)
    event = EVENT_ADAPTER.validate_json(orjson.dumps(doc))
    assert isinstance(event, FeedbackEvent)
    return event


def training(
    action: str,
    *,
    model_id: str = "fraud-v3",
    dataset_id: str = "transactions-2026",
    dataset_digest: str = "sha256:ds-1",
    commit: str = "4f1c2e9",
    artifact: str | None = None,
    at: int = 0,
) -> TrainingEvent:
    doc = _common("training", "alice", action, {"kind": "model", "id": model_id}, T0 + timedelta(seconds=at))
    doc.update(
        run_id=f"run-{next(_ids)}",
        model_id=model_id,
        dataset_id=dataset_id,
        dataset_digest=dataset_digest,
        code_commit=commit,
        artifact_digest=artifact,
    )
    event = EVENT_ADAPTER.validate_json(orjson.dumps(doc))
    assert isinstance(event, TrainingEvent)
    return event


def access(
    *,
    principal: str = "bob",
    action: str = "read",
    resource: str = "transactions-2026",
    outcome: str = "allowed",
    ip: str = "10.0.4.17",
    records: int = 100,
    ts: datetime | None = None,
) -> AccessEvent:
    doc = _common("access", principal, action, {"kind": "dataset", "id": resource}, ts or T0)
    doc.update(outcome=outcome, client={"ip": ip}, mfa=True, records=records, bytes=records * 200)
    event = EVENT_ADAPTER.validate_json(orjson.dumps(doc))
    assert isinstance(event, AccessEvent)
    return event
