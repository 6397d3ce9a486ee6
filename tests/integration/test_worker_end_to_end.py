"""The worker end to end through the real broker: nothing lost, nothing trusted unproven.

A few hundred mixed events go to real Kafka topics; a ``vigil worker`` subprocess
consumes them into its embedded store and a ``vigil notifier`` routes its alerts; the
test reads results through the worker's read-only query server, the dead-letter and
alerts topics, and a local Slack.
"""

from __future__ import annotations

import asyncio
import random
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from identity.signing import sign_document
from tests.integration.conftest import WorkerEnv, consume_all, produce, scoring_event

pytestmark = pytest.mark.integration

SECRET = b"integration-secret-0123456789abcdef"


def _write_keys(directory: Path) -> None:
    """The key registry, and the inventory that grants the scoring service its role."""
    keys = {"keys": [{"key_id": "scoring-1", "secret": "hex:" + SECRET.hex(), "sources": ["scoring-api"]}]}
    (directory / "keys.yaml").write_text(yaml.safe_dump(keys))
    inventory = {
        "principals": [{"id": "svc-scoring", "kind": "service", "roles": ["inference-client"]}],
        "models": [{"id": "risk-v1", "status": "approved", "artifact_digest": "sha256:abc"}],
    }
    (directory / "inventory.yaml").write_text(yaml.safe_dump(inventory))


def _inference(n: int, x: float, t0: datetime) -> dict[str, Any]:
    ts = t0 + timedelta(milliseconds=10 * n)
    return scoring_event(f"inf-{n:05d}", n, ts, {"x": round(x, 5), "channel": "web"})


def _traffic(count: int, drift_from: int) -> tuple[list[tuple[str, bytes | None, bytes]], dict[str, int]]:
    """Signed inference events whose feature ``x`` shifts by 4 sigma at ``drift_from``,
    one forged event and malformed messages spread through the stream."""
    rng = random.Random(11)
    t0 = datetime.now(UTC) - timedelta(seconds=60)
    messages: list[tuple[str, bytes | None, bytes]] = []
    for n in range(count):
        x = rng.gauss(4.0 if n >= drift_from else 0.0, 1.0)
        signed = sign_document(_inference(n, x, t0), "scoring-1", SECRET)
        messages.append(("ai.inference", b"risk-v1", orjson.dumps(signed)))
    forged = sign_document(_inference(count, 0.0, t0), "scoring-1", b"attacker-guessed-key-000000000000")
    malformed = [
        b'{"event_id": "cut-off", "type": "inf',
        orjson.dumps({**_inference(count + 1, 0.0, t0), "type": "telemetry"}),
        orjson.dumps({"event_id": "bare", "schema_version": 1, "type": "access"}),
        b"\xff\xfe not even utf-8",
    ]
    messages.insert(count // 3, ("ai.inference", b"risk-v1", orjson.dumps(forged)))
    for i, raw in enumerate(malformed):
        messages.insert(10 + i * 50, ("ai.inference", b"risk-v1", raw))
    return messages, {"valid": count + 1, "malformed": len(malformed)}


def _prefixed(
    env: WorkerEnv, messages: list[tuple[str, bytes | None, bytes]]
) -> list[tuple[str, bytes | None, bytes]]:
    return [(env.topic(t), k, v) for t, k, v in messages]


def test_mixed_traffic_is_stored_verified_decided_and_alerted(worker_env: WorkerEnv, fake_slack) -> None:
    _write_keys(worker_env.data_dir)
    worker_env.extra.update(
        VIGIL_KEYS_FILE=str(worker_env.data_dir / "keys.yaml"),
        VIGIL_SLACK_BOT_TOKEN="xoxb-integration",
        VIGIL_SLACK_BASE_URL=fake_slack.base_url,
        VIGIL_SLACK_CHANNEL="#ml-alerts",
    )
    messages, expect = _traffic(count=400, drift_from=300)
    asyncio.run(produce(worker_env.brokers, _prefixed(worker_env, messages)))
    worker_env.start_worker()
    # The notifier routes what the worker publishes; chDB admits one process per directory.
    worker_env.start("notifier", VIGIL_CLICKHOUSE_URL=f"chdb://{worker_env.data_dir / 'notifier-clickhouse'}")

    worker_env.wait_until("SELECT count() FROM events_unique", expect["valid"])
    worker_env.wait_until("SELECT count() FROM rejected_unique", expect["malformed"])
    assert worker_env.scalar("SELECT count() FROM decisions_unique") == expect["valid"]

    forged = worker_env.sql(
        "SELECT e.verified, e.verify_reason, d.decision, d.policy_ids FROM events_unique e "
        "JOIN decisions_unique d USING event_id WHERE event_id = 'inf-00400'"
    )
    assert forged == [["false", "bad_signature", "deny", "['zt-unverified-denied']"]]
    assert (
        worker_env.scalar("SELECT countIf(decision = 'allow') FROM decisions_unique") == expect["valid"] - 1
    )

    codes = sorted(row[0] for row in worker_env.sql("SELECT code FROM rejected_unique"))
    assert codes == ["invalid_json", "invalid_json", "missing_field", "unknown_type"]

    drift = worker_env.sql(
        "SELECT event_id, details FROM findings_unique WHERE detector_or_rule = 'feature-drift'"
    )
    assert drift, "the 4-sigma shift of x produced no finding"
    first_drift_event = min(int(event_id.split("-")[1]) for event_id, _ in drift)
    assert 300 <= first_drift_event < 400

    alerts = {row[0] for row in worker_env.sql("SELECT detector_or_rule FROM alerts_unique")}
    assert {"feature-drift", "identity-bad-signature"} <= alerts
    # The forged event is one incident: its denial is a finding, not a second alert.
    assert "zt-unverified-denied" not in alerts
    assert (
        worker_env.scalar(
            "SELECT count() FROM findings_unique WHERE detector_or_rule = 'zt-unverified-denied'"
        )
        == 1
    )

    posted = fake_slack.wait_for(len(alerts))
    assert all(call.path == "/api/chat.postMessage" for call in posted)
    assert any("drifted" in str(call.body.get("text")) for call in posted)
    assert {call.body.get("channel") for call in posted} == {"#ml-alerts"}

    dead = asyncio.run(
        consume_all(worker_env.brokers, worker_env.topic("ai.deadletter"), expect["malformed"])
    )
    assert sorted(r.value for r in dead) == sorted(v for _, _, v in messages if _is_malformed(v))
    assert all(dict(r.headers)["vigil.code"] for r in dead)

    on_topic = asyncio.run(consume_all(worker_env.brokers, worker_env.topic("ai.alerts"), len(alerts)))
    assert {orjson.loads(r.value)["detector_or_rule"] for r in on_topic} == alerts


def _is_malformed(value: bytes) -> bool:
    try:
        document = orjson.loads(value)
    except orjson.JSONDecodeError:
        return True
    return document.get("type") != "inference" or "principal" not in document


def test_sigkill_mid_stream_loses_nothing(worker_env: WorkerEnv) -> None:
    _write_keys(worker_env.data_dir)
    worker_env.extra["VIGIL_KEYS_FILE"] = str(worker_env.data_dir / "keys.yaml")
    messages, expect = _traffic(count=5000, drift_from=10_000)
    asyncio.run(produce(worker_env.brokers, _prefixed(worker_env, messages)))

    first = worker_env.start_worker()
    stored_at_kill = worker_env.wait_until("SELECT count() FROM events", 200)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    assert stored_at_kill < expect["valid"], "the worker finished before it could be killed"

    worker_env.start_worker()
    worker_env.wait_until("SELECT count() FROM events_unique", expect["valid"], timeout=180)
    assert worker_env.scalar("SELECT count() FROM rejected_unique") == expect["malformed"]
    assert worker_env.scalar("SELECT uniqExact(event_id) FROM decisions") == expect["valid"]
    # Replayed messages may be stored twice; the analysts' views still count each once.
    assert worker_env.scalar("SELECT count() FROM decisions_unique") == expect["valid"]
