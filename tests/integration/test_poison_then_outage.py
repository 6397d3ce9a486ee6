"""A poison-sized message, then a store outage, through the real broker: nothing is stuck.

The worker is ``vigil worker`` with a store that fails on cue
(``tests/integration/flaky_store_worker.py``); everything else is what a worker runs:
the consumer, the pipeline, the checkpoint, the producers of dead letters, alerts and
audit checkpoints, and an embedded store read through its query server.
"""

from __future__ import annotations

import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
import yaml
from confluent_kafka import Producer

from identity.signing import sign_document
from tests.integration.conftest import WorkerEnv, scoring_event

pytestmark = pytest.mark.integration

SECRET = b"poison-integration-secret-0123456789"
POISON_BYTES = 999_999
PER_GROUP = 30


def _produce(env: WorkerEnv, values: list[bytes]) -> None:
    producer = Producer({"bootstrap.servers": env.brokers, "message.max.bytes": 2_000_000})
    for value in values:
        producer.produce(env.topic("ai.inference"), value, b"risk-v1")  # one partition: one order
    assert producer.flush(30) == 0


def _signed(prefix: str, t0: datetime) -> list[bytes]:
    return [
        orjson.dumps(
            sign_document(
                scoring_event(f"{prefix}-{n:03d}", n, t0 + timedelta(milliseconds=n), {"x": n / 10}),
                "scoring-1",
                SECRET,
            )
        )
        for n in range(PER_GROUP)
    ]


def _wait(condition: Any, what: str, worker: subprocess.Popen[bytes], env: WorkerEnv) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert worker.poll() is None, f"the worker stopped while waiting for {what}: {env.logs()}"
        if condition():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}: {env.logs()}")


def test_a_999999_byte_message_then_a_store_outage_and_every_partition_moves_on(
    worker_env: WorkerEnv,
) -> None:
    keys = {"keys": [{"key_id": "scoring-1", "secret": "hex:" + SECRET.hex(), "sources": ["scoring-api"]}]}
    (worker_env.data_dir / "keys.yaml").write_text(yaml.safe_dump(keys))
    worker_env.extra.update(
        VIGIL_KEYS_FILE=str(worker_env.data_dir / "keys.yaml"), VIGIL_DETECTORS_SNAPSHOT_SECONDS="0"
    )
    worker = worker_env.start_module("tests.integration.flaky_store_worker")
    worker_env.wait_until("SELECT count() FROM events", 0)
    t0 = datetime.now(UTC) - timedelta(seconds=20)
    poison = b'{"event_id": "poison", "pad": "' + b"x" * (POISON_BYTES - 33) + b'"}'
    assert len(poison) == POISON_BYTES

    _produce(worker_env, [*_signed("before", t0), poison])
    _wait(lambda: worker_env.committed() == PER_GROUP + 1, "the poison message's batch", worker, worker_env)
    dead = worker_env.read(worker_env.topic("ai.deadletter"), 1, **{"fetch.max.bytes": 8_000_000})
    assert [len(d.value()) for d in dead] == [POISON_BYTES]
    assert dict(dead[0].headers())["vigil.code"] == b"oversize"

    (worker_env.data_dir / "store-outage").write_text("3")  # the next batch meets three refusals
    _produce(worker_env, _signed("after", t0 + timedelta(seconds=1)))
    _wait(
        lambda: worker_env.committed() == 2 * PER_GROUP + 1, "the batch after the outage", worker, worker_env
    )

    assert not (worker_env.data_dir / "store-outage").exists()
    assert worker_env.logs().count("injected store failure") == 3
    assert worker_env.logs().count("storing a batch failed, retrying") == 3
    assert worker_env.scalar("SELECT count() FROM events_unique WHERE verified") == 2 * PER_GROUP
    assert worker_env.sql("SELECT code, size FROM rejected_unique") == [["oversize", str(POISON_BYTES)]]
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=60) == 0, worker_env.logs()
