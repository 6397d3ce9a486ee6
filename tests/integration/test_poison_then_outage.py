"""A poison-sized message, then a store outage, through the real broker: nothing is stuck.

The worker runs in this process so the test can make its store fail on cue; everything
else is what ``vigil worker`` runs: the consumer, the pipeline, the checkpoint, the
producers of dead letters, alerts and audit checkpoints, and an embedded store.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
import yaml
from confluent_kafka import Producer

from identity.signing import sign_document
from streams.kafka_worker import run_worker
from streams.topics import ensure_broker_time, ensure_topics
from tests.integration.conftest import WorkerEnv, scoring_event
from vigil.runtime import build_pipeline, open_store
from vigil.settings import Settings

pytestmark = pytest.mark.integration

SECRET = b"poison-integration-secret-0123456789"
POISON_BYTES = 999_999
PER_GROUP = 30


class Outage:
    """Makes the store's writes fail ``failures`` times once armed, counting attempts."""

    def __init__(self) -> None:
        self.failures = 0
        self.attempts = 0
        self.lock = threading.Lock()

    def wrap(self, write: Any) -> Any:
        def failing_write(tables: Mapping[str, Sequence[Any]]) -> None:
            with self.lock:
                self.attempts += 1
                if self.failures > 0:
                    self.failures -= 1
                    raise ConnectionError("store unavailable (injected)")
            write(tables)

        return failing_write


@dataclass
class Running:
    outage: Outage
    errors: list[BaseException]
    query: Any
    """The store's client ``query``: the worker owns the embedded store, so this process reads it."""


@pytest.fixture
def in_process_worker(worker_env: WorkerEnv, monkeypatch: pytest.MonkeyPatch) -> Iterator[Running]:
    keys = {"keys": [{"key_id": "scoring-1", "secret": "hex:" + SECRET.hex(), "sources": ["scoring-api"]}]}
    (worker_env.data_dir / "keys.yaml").write_text(yaml.safe_dump(keys))
    worker_env.extra.update(
        VIGIL_KEYS_FILE=str(worker_env.data_dir / "keys.yaml"), VIGIL_DETECTORS_SNAPSHOT_SECONDS="0"
    )
    for name, value in worker_env.env.items():
        if name.startswith("VIGIL_"):
            monkeypatch.setenv(name, value)
    settings = Settings()
    ensure_topics(settings)
    ensure_broker_time(settings)
    opened = open_store(settings, serve_queries=False)
    outage = Outage()
    opened.store.write = outage.wrap(opened.store.write)  # type: ignore[method-assign]
    stopping = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            run_worker(settings, build_pipeline(settings), opened.store, stopping)
        except BaseException as error:
            errors.append(error)

    thread = threading.Thread(target=run, name="worker-under-test")
    thread.start()
    try:
        yield Running(outage, errors, opened.store.client.query)
    finally:
        stopping.set()
        thread.join(timeout=60)
        opened.close()
    assert not thread.is_alive()
    assert errors == []  # stopped cleanly: nothing it could not retry


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


def _wait(condition: Any, what: str, errors: list[BaseException], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if errors:
            raise AssertionError(f"the worker stopped while waiting for {what}") from errors[0]
        if condition():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_999999_byte_message_then_a_store_outage_and_every_partition_moves_on(
    worker_env: WorkerEnv, in_process_worker: Running
) -> None:
    outage, errors = in_process_worker.outage, in_process_worker.errors
    t0 = datetime.now(UTC) - timedelta(seconds=20)
    poison = b'{"event_id": "poison", "pad": "' + b"x" * (POISON_BYTES - 33) + b'"}'
    assert len(poison) == POISON_BYTES

    _produce(worker_env, [*_signed("before", t0), poison])
    _wait(lambda: worker_env.committed() == PER_GROUP + 1, "the poison message's batch to commit", errors)
    dead = worker_env.read(worker_env.topic("ai.deadletter"), 1, **{"fetch.max.bytes": 8_000_000})
    assert [len(d.value()) for d in dead] == [POISON_BYTES]
    assert dict(dead[0].headers())["vigil.code"] == b"oversize"

    outage.failures = 3  # the next batch meets a store that refuses three times
    attempts_before = outage.attempts
    _produce(worker_env, _signed("after", t0 + timedelta(seconds=1)))
    _wait(lambda: worker_env.committed() == 2 * PER_GROUP + 1, "the batch after the outage to commit", errors)

    assert outage.failures == 0
    assert outage.attempts - attempts_before >= 4  # three refusals, then stored
    query = in_process_worker.query
    assert query("SELECT count() FROM events_unique WHERE verified").result_rows == [(2 * PER_GROUP,)]
    assert query("SELECT code, size FROM rejected_unique").result_rows == [("oversize", POISON_BYTES)]
