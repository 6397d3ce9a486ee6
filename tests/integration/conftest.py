"""Integration fixtures: the real Kafka broker, worker processes, a local Slack.

The broker is the project's own (scripts/kafka/broker.sh), and Alertmanager is
Debian's (scripts/alertmanager.sh): each started once per session if it is not
already answering, and stopped again only if this session started it.
Every test gets its own topic prefix and consumer group so tests never share data.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from sinks.query_server import QueryError, query_remote
from tests.clock import FakeClock
from tests.slack_server import FakeSlack

REPO = Path(__file__).resolve().parents[2]
BROKER_PORT = int(os.environ.get("VIGIL_KAFKA_PORT", "19092"))
BROKERS = f"127.0.0.1:{BROKER_PORT}"
ALERTMANAGER_PORT = int(os.environ.get("VIGIL_ALERTMANAGER_PORT", "19593"))


def _answers(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="session")
def kafka_brokers() -> Iterator[str]:
    started = False
    if not _answers(BROKER_PORT):
        subprocess.run([str(REPO / "scripts/kafka/broker.sh"), "start"], check=True, timeout=600)
        started = True
    yield BROKERS
    if started:
        subprocess.run([str(REPO / "scripts/kafka/broker.sh"), "stop"], check=False, timeout=60)


@pytest.fixture(scope="session")
def alertmanager_url() -> Iterator[str]:
    """Debian's prometheus-alertmanager (scripts/alertmanager.sh installs it when missing)."""
    started = False
    if not _answers(ALERTMANAGER_PORT):
        subprocess.run([str(REPO / "scripts/alertmanager.sh"), "start"], check=True, timeout=600)
        started = True
    yield f"http://127.0.0.1:{ALERTMANAGER_PORT}"
    if started:
        subprocess.run([str(REPO / "scripts/alertmanager.sh"), "stop"], check=False, timeout=60)


@pytest.fixture
def fake_slack(clock: FakeClock) -> Iterator[FakeSlack]:
    server = FakeSlack(wall=clock.wall).start()
    yield server
    server.stop()


@dataclass
class WorkerEnv:
    """Everything a ``vigil worker`` subprocess of one test shares."""

    data_dir: Path
    brokers: str
    prefix: str
    extra: dict[str, str] = field(default_factory=dict)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
        env.update(
            VIGIL_DATA_DIR=str(self.data_dir),
            VIGIL_KAFKA_BROKERS=self.brokers,
            VIGIL_KAFKA_TOPIC_PREFIX=self.prefix,
            VIGIL_KAFKA_GROUP_ID=f"{self.prefix}vigil",
            VIGIL_KAFKA_BATCH_SIZE="50",
            VIGIL_KAFKA_BATCH_WITHIN="0.5",
            VIGIL_KAFKA_SESSION_TIMEOUT="6",
            VIGIL_LOG_LEVEL="INFO",
            PYTHONPATH=str(REPO),
        )
        env.update(self.extra)
        return env

    def topic(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def start_worker(self) -> subprocess.Popen[bytes]:
        return self.start("worker")

    def start(self, command: str, **extra: str) -> subprocess.Popen[bytes]:
        """A ``vigil <command>`` subprocess (``worker``, ``notifier``), logging beside the data."""
        return self.start_module("cli", command, **extra)

    def start_module(self, module: str, *args: str, **extra: str) -> subprocess.Popen[bytes]:
        """``python -m <module> <args>``, such as a worker with a store tests can steer."""
        log = (self.data_dir / f"worker-{len(self.processes)}.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            env={**self.env, **extra},
            cwd=self.data_dir,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.processes.append(process)
        return process

    def sql(self, query: str, store: str = "clickhouse") -> list[list[str]]:
        """Query a running process's embedded store (the worker's by default) through its query server."""
        output = query_remote(self.data_dir / store, query, "TSV")
        return [line.split("\t") for line in output.decode().splitlines()]

    def scalar(self, query: str, store: str = "clickhouse") -> int:
        return int(self.sql(query, store)[0][0])

    def wait_until(self, query: str, expected: int, timeout: float = 120.0, store: str = "clickhouse") -> int:
        deadline = time.monotonic() + timeout
        value = -1
        while time.monotonic() < deadline:
            try:
                value = self.scalar(query, store)
            except QueryError:
                value = -1  # worker still starting: no query server yet
            if value >= expected:
                return value
            time.sleep(0.5)
        raise AssertionError(f"{query!r} reached {value}, expected {expected}; logs: {self.logs()}")

    def committed(self, topic: str = "ai.inference") -> int:
        """Messages of ``topic`` the worker's consumer group has committed."""
        consumer = Consumer({"bootstrap.servers": self.brokers, "group.id": f"{self.prefix}vigil"})
        try:
            partitions = [TopicPartition(self.topic(topic), p) for p in range(4)]
            return sum(max(tp.offset, 0) for tp in consumer.committed(partitions, timeout=10))
        finally:
            consumer.close()

    def read(self, topic: str, expected: int, timeout: float = 30.0, **config: Any) -> list[Any]:
        """Up to ``expected`` records of ``topic`` (a full name), from its start."""
        settings = {
            "bootstrap.servers": self.brokers,
            "group.id": f"{self.prefix}reader",
            "auto.offset.reset": "earliest",
            **config,
        }
        consumer = Consumer(settings)
        consumer.subscribe([topic])
        records: list[Any] = []
        deadline = time.monotonic() + timeout
        try:
            while len(records) < expected and time.monotonic() < deadline:
                records.extend(r for r in consumer.consume(100, 0.5) if r.error() is None)
        finally:
            consumer.close()
        return records

    def logs(self) -> str:
        return "\n".join(
            p.read_text(errors="replace")[-4000:] for p in sorted(self.data_dir.glob("worker-*.log"))
        )

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def worker_env(tmp_path: Path, kafka_brokers: str) -> Iterator[WorkerEnv]:
    env = WorkerEnv(tmp_path, kafka_brokers, f"it{uuid.uuid4().hex[:10]}.")
    yield env
    env.stop_all()


def scoring_event(
    event_id: str, n: int, ts: datetime, features: dict[str, Any], model: str = "risk-v1"
) -> dict[str, Any]:
    """An unsigned inference event of the scoring service, as the integration tests send them."""
    return {
        "event_id": event_id,
        "schema_version": 1,
        "type": "inference",
        "ts": ts.isoformat(),
        "source": "scoring-api",
        "principal": {"id": "svc-scoring", "kind": "service", "roles": ["inference-client"]},
        "action": "infer",
        "resource": {"kind": "model", "id": model},
        "model_id": model,
        "model_version": "1",
        "artifact_digest": "sha256:abc",
        "request_id": f"req-{n}",
        "features": features,
        "prediction": {"score": 0.5},
        "latency_ms": 12.5,
    }


async def produce(brokers: str, messages: list[tuple[str, bytes | None, bytes]]) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=brokers, acks="all")
    await producer.start()
    try:
        futures = [await producer.send(topic, value, key=key) for topic, key, value in messages]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def consume_all(brokers: str, topic: str, expected: int, timeout: float = 60.0) -> list[object]:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=brokers, auto_offset_reset="earliest")
    await consumer.start()
    records: list[object] = []
    try:
        deadline = time.monotonic() + timeout
        while len(records) < expected and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for partition_records in batch.values():
                records.extend(partition_records)
    finally:
        await consumer.stop()
    return records
