"""Vigil against a broker that requires mutual TLS and SASL, as managed Kafka clusters do.

The test makes its own CA and certificates with openssl, starts a second local broker
with a SASL_SSL listener (scripts/kafka/broker.sh, ``VIGIL_KAFKA_SSL_DIR``) that
requires a client certificate, and creates SCRAM users with Kafka's own tooling. The
whole path goes through that listener: ``vigil publish`` (SCRAM-SHA-256), the worker's
consumer, producers and admin client (SCRAM-SHA-512), ``vigil notifier`` (faust,
SCRAM-SHA-512) and an aiokafka reader built from ``aiokafka_config`` (PLAIN). A wrong password and
an untrusted certificate each end a command with one line that says so.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
import yaml
from confluent_kafka import Consumer, TopicPartition

from tests.integration.conftest import BROKER_PORT, REPO, WorkerEnv, scoring_event
from vigil.kafka_clients import aiokafka_config
from vigil.settings import Settings

pytestmark = pytest.mark.integration

BROKER = REPO / "scripts/kafka/broker.sh"
SECRET = b"secure-kafka-integration-secret-0123"
WORKER_PASSWORD = "worker-scram-secret"
PUBLISHER_PASSWORD = "publisher-scram-secret"
READER_PASSWORD = "reader-plain-secret"
EVENTS = 40


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_certificates(directory: Path) -> None:
    """A CA, the broker's certificate for 127.0.0.1, a client certificate, and a CA nobody trusts."""
    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for ca in ("ca", "other-ca"):
        _openssl("req", "-x509", *key, "-keyout", f"{ca}.key", "-out", f"{ca}.crt", "-days", "2",
                 "-subj", f"/CN=vigil-test-{ca}", cwd=directory)  # fmt: skip
    (directory / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name, extra in (("server", ["-extfile", "san.ext"]), ("client", [])):
        _openssl("req", *key, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN=vigil-{name}",
                 cwd=directory)  # fmt: skip
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                 "-out", f"{name}.crt", "-days", "2", *extra, cwd=directory)  # fmt: skip


@dataclass(frozen=True)
class SecureBroker:
    directory: Path
    plaintext: str
    """The same broker's loopback PLAINTEXT listener, for the test's own checks."""
    secure: str

    def env(self, username: str, password: str, mechanism: str) -> dict[str, str]:
        return {
            "VIGIL_KAFKA_BROKERS": self.secure,
            "VIGIL_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "VIGIL_KAFKA_SSL_CA_FILE": str(self.directory / "ca.crt"),
            "VIGIL_KAFKA_SSL_CERT_FILE": str(self.directory / "client.crt"),
            "VIGIL_KAFKA_SSL_KEY_FILE": str(self.directory / "client.key"),
            "VIGIL_KAFKA_SASL_MECHANISM": mechanism,
            "VIGIL_KAFKA_SASL_USERNAME": username,
            "VIGIL_KAFKA_SASL_PASSWORD": password,
        }


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory: pytest.TempPathFactory, kafka_brokers: str) -> Iterator[SecureBroker]:
    directory = tmp_path_factory.mktemp("kafka-tls")
    make_certificates(directory)
    (directory / "plain-users").write_text(f"reader:{READER_PASSWORD}\n")
    port = BROKER_PORT + 10
    env = {**os.environ, "VIGIL_KAFKA_PORT": str(port), "VIGIL_KAFKA_SSL_DIR": str(directory)}
    subprocess.run([str(BROKER), "stop"], env=env, check=True, timeout=60)  # never reuse a plain one
    subprocess.run([str(BROKER), "start"], env=env, check=True, timeout=600)
    try:
        for user, password in (("worker", WORKER_PASSWORD), ("publisher", PUBLISHER_PASSWORD)):
            subprocess.run([str(BROKER), "scram-user", user, password], env=env, check=True, timeout=120)
        yield SecureBroker(directory, f"127.0.0.1:{port}", f"127.0.0.1:{port + 2}")
    finally:
        subprocess.run([str(BROKER), "stop"], env=env, check=False, timeout=60)


@pytest.fixture
def secure_env(tmp_path: Path, secure_broker: SecureBroker) -> Iterator[WorkerEnv]:
    env = WorkerEnv(tmp_path, secure_broker.secure, f"tls{uuid.uuid4().hex[:10]}.")
    keys = {"keys": [{"key_id": "scoring-1", "secret": "hex:" + SECRET.hex(), "sources": ["scoring-api"]}]}
    (tmp_path / "keys.yaml").write_text(yaml.safe_dump(keys))
    env.extra.update(
        secure_broker.env("worker", WORKER_PASSWORD, "SCRAM-SHA-512"),
        VIGIL_KEYS_FILE=str(tmp_path / "keys.yaml"),
        VIGIL_DETECTORS_SNAPSHOT_SECONDS="0",
    )
    yield env
    env.stop_all()


def vigil(env: WorkerEnv, *args: str, **overrides: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        env=env.env | overrides,
        cwd=env.data_dir,
        capture_output=True,
        text=True,
        timeout=180,
    )


def committed(brokers: str, group: str, topic: str) -> int:
    consumer = Consumer({"bootstrap.servers": brokers, "group.id": group})
    try:
        partitions = [TopicPartition(topic, p) for p in range(4)]
        return sum(max(tp.offset, 0) for tp in consumer.committed(partitions, timeout=10))
    finally:
        consumer.close()


async def read_with_aiokafka(settings: Settings, topic: str, expected: int) -> list[bytes]:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(topic, auto_offset_reset="earliest", **aiokafka_config(settings))
    await consumer.start()
    values: list[bytes] = []
    try:
        for _ in range(60):
            for records in (await consumer.getmany(timeout_ms=500)).values():
                values.extend(r.value for r in records if r.value is not None)
            if len(values) >= expected:
                break
    finally:
        await consumer.stop()
    return values


def test_the_whole_path_runs_through_mutual_tls_and_sasl(
    secure_env: WorkerEnv, secure_broker: SecureBroker
) -> None:
    secure_env.start_worker()
    secure_env.wait_until("SELECT count() FROM events", 0)
    t0 = datetime.now(UTC) - timedelta(seconds=10)
    lines = [orjson.dumps(scoring_event(f"tls-{n}", n, t0, {"x": n / 10})) for n in range(EVENTS)]
    (secure_env.data_dir / "events.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    (secure_env.data_dir / "junk.jsonl").write_bytes(b"not an event\n")
    publisher = secure_broker.env("publisher", PUBLISHER_PASSWORD, "SCRAM-SHA-256")

    sent = vigil(secure_env, "publish", "--input", "events.jsonl", **publisher)
    junk = vigil(secure_env, "publish", "--input", "junk.jsonl", "--raw", "ai.inference", **publisher)

    assert sent.returncode == 0, sent.stderr
    assert junk.returncode == 0, junk.stderr
    secure_env.wait_until("SELECT count() FROM events_unique WHERE verified", EVENTS)
    secure_env.wait_until("SELECT count() FROM rejected_unique", 1)
    group, inference = f"{secure_env.prefix}vigil", secure_env.topic("ai.inference")
    deadline = 60
    while committed(secure_broker.plaintext, group, inference) < EVENTS + 1 and deadline:
        asyncio.run(asyncio.sleep(1))
        deadline -= 1
    assert committed(secure_broker.plaintext, group, inference) == EVENTS + 1

    reader = Settings(
        kafka_brokers=secure_broker.secure,
        kafka={  # type: ignore[arg-type]
            "security_protocol": "SASL_SSL",
            "ssl_ca_file": secure_broker.directory / "ca.crt",
            "ssl_cert_file": secure_broker.directory / "client.crt",
            "ssl_key_file": secure_broker.directory / "client.key",
            "sasl_mechanism": "PLAIN",
            "sasl_username": "reader",
            "sasl_password": READER_PASSWORD,
        },
    )
    dead_letters = asyncio.run(read_with_aiokafka(reader, secure_env.topic("ai.deadletter"), 1))
    assert dead_letters == [b"not an event"]


def _one_line_error(result: subprocess.CompletedProcess[str], reason: str) -> str:
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if reason in line]
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith("Error: Kafka at "), result.stderr
    return errors[0]


def test_a_wrong_password_ends_worker_and_publish_with_one_line(secure_env: WorkerEnv) -> None:
    (secure_env.data_dir / "events.jsonl").write_bytes(b"{}\n")
    wrong = {"VIGIL_KAFKA_SASL_PASSWORD": "not-the-password"}

    worker = vigil(secure_env, "worker", **wrong)
    publish = vigil(secure_env, "publish", "--input", "events.jsonl", "--raw", "ai.inference", **wrong)

    for result in (worker, publish):
        line = _one_line_error(result, "authentication failed")
        assert "not-the-password" not in result.stderr
        assert "SCRAM-SHA-512" in line


def test_an_untrusted_broker_certificate_ends_the_worker_with_one_line(
    secure_env: WorkerEnv, secure_broker: SecureBroker
) -> None:
    result = vigil(
        secure_env, "worker", VIGIL_KAFKA_SSL_CA_FILE=str(secure_broker.directory / "other-ca.crt")
    )

    line = _one_line_error(result, "TLS failed")
    assert "certificate verify failed" in line


def _records(brokers: str, topic: str, quiet_seconds: float = 3.0) -> int:
    """How many records ``topic`` holds, read over the plaintext listener until it goes quiet."""
    consumer = Consumer({"bootstrap.servers": brokers, "group.id": f"count-{uuid.uuid4().hex}",
                         "auto.offset.reset": "earliest"})  # fmt: skip
    consumer.subscribe([topic])
    count, quiet = 0, 0.0
    try:
        while quiet < quiet_seconds:
            batch = [r for r in consumer.consume(500, 0.5) if r.error() is None]
            count += len(batch)
            quiet = 0.0 if batch else quiet + 0.5
    finally:
        consumer.close()
    return count


def test_the_notifier_consumes_alerts_through_mutual_tls_and_scram(
    secure_env: WorkerEnv, secure_broker: SecureBroker
) -> None:
    secure_env.start_worker()
    secure_env.wait_until("SELECT count() FROM events", 0)
    t0 = datetime.now(UTC) - timedelta(seconds=10)
    lines = [orjson.dumps(scoring_event(f"alert-{n}", n, t0, {"x": 1.0})) for n in range(5)]
    (secure_env.data_dir / "unsigned.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    sent = vigil(
        secure_env,
        "publish",
        "--input",
        "unsigned.jsonl",
        "--raw",
        "ai.inference",
        **secure_broker.env("publisher", PUBLISHER_PASSWORD, "SCRAM-SHA-256"),
    )
    assert sent.returncode == 0, sent.stderr
    secure_env.wait_until("SELECT count() FROM alerts_unique", 1)  # unsigned events raise alerts
    alerts_topic = secure_env.topic("ai.alerts")
    published = _records(secure_broker.plaintext, alerts_topic)
    assert published >= 1

    notifier_store = f"chdb://{secure_env.data_dir / 'notifier-store'}"
    secure_env.start("notifier", VIGIL_CLICKHOUSE_URL=notifier_store)  # SCRAM-SHA-512 over mutual TLS
    group = f"{secure_env.prefix}vigil-notifier"
    deadline = 90
    while committed(secure_broker.plaintext, group, alerts_topic) < published and deadline:
        asyncio.run(asyncio.sleep(1))
        deadline -= 1
    assert committed(secure_broker.plaintext, group, alerts_topic) == published, secure_env.logs()
