"""The audit ledger under the real worker: SIGKILL mid-stream, restart, replay, verify.

Events for several models spread over the source partitions (one ledger stream
each). The first worker is killed once it has stored a batch whose offsets are not yet
committed (its store is told to hold there), so the second one replays messages whose
entries are already in the ledger; afterwards every record version has exactly one
entry (each decision exactly one), every stream's chain is whole, and the checkpoints
on the compacted ``ai.audit`` topic verify.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from audit.config import export_dir
from identity.signing import sign_document
from tests.integration.conftest import REPO, WorkerEnv, consume_all, produce, scoring_event
from vigil.settings import Settings

pytestmark = pytest.mark.integration

SECRET = b"audit-integration-secret-0123456789"
MODELS = ("risk-v1", "churn-v2", "price-v4", "fraud-v9")


def _write_keys(directory: Path) -> None:
    keys = {"keys": [{"key_id": "scoring-1", "secret": "hex:" + SECRET.hex(), "sources": ["scoring-api"]}]}
    (directory / "keys.yaml").write_text(yaml.safe_dump(keys))


def _event(n: int, model: str, t0: datetime) -> dict[str, Any]:
    ts = t0 + timedelta(milliseconds=10 * n)
    return scoring_event(f"aud-{n:05d}", n, ts, {"x": (n % 17) / 17}, model=model)


def _traffic(env: WorkerEnv, count: int) -> list[tuple[str, bytes | None, bytes]]:
    t0 = datetime.now(UTC) - timedelta(minutes=5)
    messages = []
    for n in range(count):
        model = MODELS[n % len(MODELS)]
        document = sign_document(_event(n, model, t0), "scoring-1", SECRET)
        if n % 50 == 7:  # some forged events, so findings and alerts are entered too
            document = sign_document(_event(n, model, t0), "scoring-1", b"not-the-key-0000000000000000000")
        messages.append((env.topic("ai.inference"), model.encode(), orjson.dumps(document)))
    return messages


def _vigil(env: WorkerEnv, *args: str) -> subprocess.CompletedProcess[str]:
    process_env = env.env | {"PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        env=process_env,
        cwd=env.data_dir,
        capture_output=True,
        text=True,
        timeout=300,
    )


async def _audit_topic_policy(brokers: str, topic: str) -> str:
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    admin = AIOKafkaAdminClient(bootstrap_servers=brokers)
    await admin.start()
    try:
        (response,) = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
        for resource in response.resources:
            for entry in resource[4]:
                if entry[0] == "cleanup.policy":
                    return str(entry[1])
    finally:
        await admin.close()
    return ""


def test_a_killed_worker_leaves_no_duplicate_and_no_broken_chain(worker_env: WorkerEnv) -> None:
    _write_keys(worker_env.data_dir)
    worker_env.extra.update(
        VIGIL_KEYS_FILE=str(worker_env.data_dir / "keys.yaml"),
        VIGIL_AUDIT_CHECKPOINT_ENTRIES="100",
    )
    count = 2400
    asyncio.run(produce(worker_env.brokers, _traffic(worker_env, count)))

    (worker_env.data_dir / "store-hold").write_text("1")  # hold right after the first batch is stored
    first = worker_env.start_module("tests.integration.flaky_store_worker")
    stored_at_kill = _kill_with_a_batch_stored_but_uncommitted(worker_env, first)
    assert 0 < stored_at_kill < count

    second = worker_env.start_worker()
    worker_env.wait_until("SELECT uniqExact(event_id) FROM events", count, timeout=180)
    worker_env.wait_until("SELECT count() FROM audit_ledger WHERE kind = 'decision'", count, timeout=60)
    second.send_signal(signal.SIGTERM)
    assert second.wait(timeout=60) == 0, worker_env.logs()

    shape = orjson.loads(_vigil(worker_env, "sql", _LEDGER_SHAPE, "--format", "JSONEachRow").stdout)
    restarted_log = (worker_env.data_dir / "worker-1.log").read_text()
    assert "already in the audit ledger (a replayed batch)" in restarted_log, "nothing was replayed"
    assert shape["decisions"] == count
    assert shape["duplicate_positions"] == 0
    assert shape["duplicate_records"] == 0
    assert shape["decisions_twice"] == 0
    assert shape["streams"] >= 2
    assert shape["gaps"] == 0

    audit_topic = worker_env.topic("ai.audit")
    # Everything on the topic: ask for more than there can be, stop at the timeout.
    published = asyncio.run(consume_all(worker_env.brokers, audit_topic, 10**6, timeout=8))
    assert published
    exported = list(export_dir(Settings(data_dir=worker_env.data_dir)).glob("*/*.json"))

    result = _vigil(worker_env, "audit", "verify", "--kafka", "--format", "json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = orjson.loads(result.stdout)
    assert report["ok"]
    assert report["entries"] == shape["entries"]
    copies = sum(s["checkpoints_external"] for s in report["streams"])
    assert copies == len(exported) + len(published)  # the directory and the topic were both checked
    assert {r.key.decode() for r in published} <= {
        f"{worker_env.topic('ai.inference')}:{p}" for p in range(4)
    }
    assert asyncio.run(_audit_topic_policy(worker_env.brokers, audit_topic)) == "compact"


def _kill_with_a_batch_stored_but_uncommitted(env: WorkerEnv, worker: subprocess.Popen[bytes]) -> int:
    """SIGKILL the worker while its ledger holds decisions whose offsets are not committed.

    The worker's store holds after its first batch is stored, before anything is
    committed; the next worker must then replay entries the ledger already has, the
    case this test is about.
    """
    held = env.data_dir / "store-held"
    deadline = time.monotonic() + 120
    while not held.exists():
        assert worker.poll() is None, env.logs()
        assert time.monotonic() < deadline, f"the first batch was never stored: {env.logs()}"
        time.sleep(0.1)
    stored = env.scalar("SELECT count() FROM audit_ledger WHERE kind = 'decision'")
    assert env.committed() == 0
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=30)
    return stored


_LEDGER_SHAPE = """
SELECT
    count() AS entries,
    countIf(kind = 'decision') AS decisions,
    count() - uniqExact(stream, seq) AS duplicate_positions,
    count() - uniqExact(stream, kind, record_id, record_hash) AS duplicate_records,
    countIf(kind = 'decision') - uniqExactIf(record_id, kind = 'decision') AS decisions_twice,
    uniqExact(stream) AS streams,
    (SELECT sum(m - n) FROM (SELECT max(seq) AS m, count() AS n FROM audit_ledger GROUP BY stream)) AS gaps
FROM audit_ledger
"""
