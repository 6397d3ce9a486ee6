"""Detectors through the real broker: each incident is one finding on the right key,
stationary traffic is quiet, and a restarted worker keeps its baselines.

Events go to the real topics with the producers' keys (model id, or principal id for
access), a ``vigil worker`` subprocess consumes them, and the test reads the
``findings`` table through the worker's query server.
"""

from __future__ import annotations

import asyncio
import random
import signal
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
import yaml

from identity.signing import sign_document
from tests.integration.conftest import WorkerEnv, produce

pytestmark = pytest.mark.integration

SECRET = b"detectors-secret-0123456789abcdef"
Message = tuple[str, bytes, bytes]


class Traffic:
    """Signed events with explicit times, keyed the way producers key them."""

    def __init__(self, start: datetime) -> None:
        self.start = start
        self.n = 0
        self.messages: list[Message] = []

    def _add(self, topic: str, key: str, doc: dict[str, Any]) -> None:
        self.messages.append((topic, key.encode(), orjson.dumps(sign_document(doc, "detect-1", SECRET))))

    def _common(
        self, kind: str, principal: str, action: str, resource: dict[str, str], at: float
    ) -> dict[str, Any]:
        self.n += 1
        return {
            "event_id": f"{kind}-{self.n:06d}",
            "schema_version": 1,
            "type": kind,
            "ts": (self.start + timedelta(seconds=at)).isoformat(),
            "source": "scoring-api",
            "principal": {"id": principal, "kind": "user" if principal == "eve" else "service", "roles": []},
            "action": action,
            "resource": resource,
        }

    def inference(self, model: str, at: float, **fields: Any) -> None:
        doc = self._common("inference", "svc-scoring", "infer", {"kind": "model", "id": model}, at)
        doc.update(
            model_id=model,
            model_version="1",
            artifact_digest=f"sha256:{model}",
            request_id=f"req-{self.n}",
            features={},
            prediction={},
            latency_ms=12.0,
        )
        doc.update(fields)
        self._add("ai.inference", model, doc)

    def access(self, principal: str, at: float, **fields: Any) -> None:
        doc = self._common("access", principal, "read", {"kind": "dataset", "id": "transactions"}, at)
        doc.update(outcome="allowed", client={"ip": "10.1.2.3"}, mfa=True, records=50)
        doc.update(fields)
        self._add("ai.access", principal, doc)


def configure(env: WorkerEnv, **extra: str) -> None:
    keys = {"keys": [{"key_id": "detect-1", "secret": "hex:" + SECRET.hex(), "sources": ["scoring-api"]}]}
    (env.data_dir / "keys.yaml").write_text(yaml.safe_dump(keys))
    env.extra.update(
        VIGIL_KEYS_FILE=str(env.data_dir / "keys.yaml"),
        VIGIL_IDENTITY_MAX_SKEW_SECONDS=str(3 * 86400),  # the traffic carries hours of history
        VIGIL_KAFKA_BATCH_SIZE="500",
        **extra,
    )


def send(env: WorkerEnv, traffic: Traffic) -> None:
    asyncio.run(produce(env.brokers, [(env.topic(t), k, v) for t, k, v in traffic.messages]))


def detector_findings(env: WorkerEnv) -> list[tuple[str, str, str]]:
    rows = env.sql(
        "SELECT detector_or_rule, if(model_id = '', principal_id, model_id), details "
        "FROM findings_unique WHERE stage = 'detector' ORDER BY ts"
    )
    return [(rule, key, orjson.loads(details).get("key", "")) for rule, key, details in rows]


def test_each_incident_is_one_finding_and_stationary_traffic_is_quiet(worker_env: WorkerEnv) -> None:
    configure(worker_env)
    rng = random.Random(21)
    t = Traffic(datetime.now(UTC) - timedelta(hours=3))
    for i in range(50_000):  # stationary: two numeric features, a category, score, latency
        t.inference(
            "calm-v1",
            i * 0.2,
            features={
                "x": round(rng.gauss(0, 1), 4),
                "y": round(rng.expovariate(1.0), 4),
                "c": rng.choice("abc"),
            },
            prediction={"score": round(rng.random(), 4)},
            latency_ms=round(rng.lognormvariate(2.5, 0.3), 3),
        )
    for i in range(700):  # a feature drifts by 4 sd from event 600
        t.inference("risk-v1", i, features={"x": round(rng.gauss(4.0 if i >= 600 else 0.0, 1.0), 4)})
    for i in range(700):  # latency four times higher from event 600
        t.inference("lat-v1", i, latency_ms=round(rng.lognormvariate(2.5, 0.3) * (4 if i >= 600 else 1), 3))
    for i in range(6_000):  # bias injected in one segment from event 3000 (the overall mix holds)
        sex = rng.choice("fm")
        rate = 0.3 if i < 3_000 else (0.12 if sex == "f" else 0.48)
        t.inference("credit-v2", i, prediction={"label": int(rng.random() < rate)}, segment={"sex": sex})
    for i in range(300):  # the served artifact changes silently from event 200
        t.inference("fraud-v9", i, artifact_digest="sha256:rogue" if i >= 200 else "sha256:fraud-v9")
    for minute in range(90):  # eve reads about once a minute, then bursts 150 reads in a minute
        t.access("eve", minute * 60 + rng.uniform(0, 50))
    for i in range(150):
        t.access("eve", 90 * 60 + i * 0.3)
    send(worker_env, t)
    worker_env.start_worker()
    worker_env.wait_until("SELECT count() FROM events_unique", len(t.messages), timeout=240)

    found = detector_findings(worker_env)
    assert Counter((rule, key) for rule, key, _ in found) == {
        ("feature-drift", "risk-v1"): 1,
        ("latency-spike", "lat-v1"): 1,
        ("bias-shift", "credit-v2"): 1,
        ("artifact-unregistered", "fraud-v9"): 1,
        ("access-burst", "eve"): 1,
    }, found
    assert ("feature-drift", "risk-v1", "x") in found
    assert ("latency-spike", "lat-v1", "latency_ms") in found


def test_a_restarted_worker_keeps_its_baselines(worker_env: WorkerEnv) -> None:
    configure(worker_env, VIGIL_DETECTORS_SNAPSHOT_SECONDS="0.2")
    rng = random.Random(22)
    start = datetime.now(UTC) - timedelta(hours=1)
    before = Traffic(start)
    for i in range(500):
        before.inference("risk-v1", i, features={"x": round(rng.gauss(0.0, 1.0), 4)})
    send(worker_env, before)
    first = worker_env.start_worker()
    worker_env.wait_until("SELECT count() FROM events_unique", 500)
    worker_env.wait_until(
        "SELECT max(JSONExtractInt(state, 'offsets', {topic:String})) FROM detector_state "
        "WHERE unit = ''".replace("{topic:String}", f"'{worker_env.topic('ai.inference')}'"),
        499,
    )
    first.send_signal(signal.SIGTERM)
    first.wait(timeout=60)

    after = Traffic(start)
    after.n = 1_000
    for i in range(500, 650):  # drifted from the first event the new worker sees
        after.inference("risk-v1", i, features={"x": round(rng.gauss(4.0, 1.0), 4)})
    send(worker_env, after)
    worker_env.start_worker()
    worker_env.wait_until("SELECT count() FROM events_unique", 650)
    # A worker that lost the baseline would warm up on the drifted values and find nothing.
    assert [(rule, key) for rule, key, _ in detector_findings(worker_env)] == [("feature-drift", "risk-v1")]
    assert "restored detector state of partition" in worker_env.logs()
