"""The ingest worker against the real broker: every codec producers use, messages at the
broker's size limit, offsets committed only for what is stored and confirmed, and an
exit with an error when the broker refuses what the worker must publish.

Producers compress with whatever they like; a batch the worker cannot decompress would
stop it for good. Each codec here goes through the broker as the producer sent it.
"""

from __future__ import annotations

import signal
import time
from datetime import UTC, datetime, timedelta

import orjson
import pytest
import yaml
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from identity.signing import sign_document
from tests.integration.conftest import WorkerEnv, scoring_event

pytestmark = pytest.mark.integration

SECRET = b"codec-integration-secret-0123456789"
CODECS = ("gzip", "snappy", "lz4", "zstd")
PER_CODEC = 60
BROKER_LIMIT = 1_048_588
"""The broker's default ``message.max.bytes``."""


def _configure(env: WorkerEnv) -> None:
    keys = {"keys": [{"key_id": "scoring-1", "secret": "hex:" + SECRET.hex(), "sources": ["scoring-api"]}]}
    (env.data_dir / "keys.yaml").write_text(yaml.safe_dump(keys))
    env.extra.update(VIGIL_KEYS_FILE=str(env.data_dir / "keys.yaml"), VIGIL_DETECTORS_SNAPSHOT_SECONDS="0")


def _produce(env: WorkerEnv, codec: str, messages: list[tuple[bytes, bytes]]) -> None:
    producer = Producer(
        {
            "bootstrap.servers": env.brokers,
            "compression.type": codec,
            "linger.ms": 50,
            "message.max.bytes": 2 * BROKER_LIMIT,
        }
    )
    failures: list[str] = []
    for key, value in messages:
        producer.produce(
            env.topic("ai.inference"),
            value,
            key,
            on_delivery=lambda error, _m: failures.append(error.str()) if error else None,
        )
    assert producer.flush(30) == 0
    assert failures == []


def _events(codec: str, t0: datetime) -> list[tuple[bytes, bytes]]:
    messages = []
    for n in range(PER_CODEC):
        model = f"model-{n % 4}"
        event = scoring_event(f"{codec}-{n:04d}", n, t0 + timedelta(milliseconds=n), {"x": n / 10}, model)
        messages.append((model.encode(), orjson.dumps(sign_document(event, "scoring-1", SECRET))))
    return messages


def test_every_codec_and_a_message_at_the_size_limit_are_stored_then_committed(worker_env: WorkerEnv) -> None:
    _configure(worker_env)
    t0 = datetime.now(UTC) - timedelta(seconds=30)
    worker_env.start_worker()  # creates the topics, the dead-letter one larger than the broker's limit
    worker_env.wait_until("SELECT count() FROM events", 0)
    for codec in CODECS:
        _produce(worker_env, codec, _events(codec, t0))
    near_limit = b'{"event_id": "huge", "pad": "' + b"x" * (BROKER_LIMIT - 200) + b'"}'
    _produce(worker_env, "none", [(b"model-0", near_limit)])

    total = len(CODECS) * PER_CODEC
    worker_env.wait_until("SELECT count() FROM events_unique", total)
    worker_env.wait_until("SELECT count() FROM rejected_unique", 1)
    stored = {
        row[0]: int(row[1])
        for row in worker_env.sql(
            "SELECT splitByChar('-', event_id)[1], count() FROM events_unique WHERE verified GROUP BY 1"
        )
    }
    assert stored == dict.fromkeys(CODECS, PER_CODEC)
    assert worker_env.sql("SELECT code, size FROM rejected_unique") == [["oversize", str(len(near_limit))]]

    (dead,) = worker_env.read(worker_env.topic("ai.deadletter"), 1, **{"fetch.max.bytes": 8 * BROKER_LIMIT})
    assert dead.value() == near_limit  # type: ignore[attr-defined]
    assert dict(dead.headers())["vigil.code"] == b"oversize"  # type: ignore[attr-defined]

    # The last batch is committed as soon as it is written, not when more traffic comes
    # (snapshots, which also drain the writer, are off in this test).
    deadline = time.monotonic() + 10
    while worker_env.committed() < total + 1 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert worker_env.committed() == total + 1

    worker = worker_env.processes[0]
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=60) == 0, worker_env.logs()


def test_a_broker_that_refuses_an_alert_ends_the_worker_without_committing(worker_env: WorkerEnv) -> None:
    _configure(worker_env)
    alerts_topic = worker_env.topic("ai.alerts")
    admin = AdminClient({"bootstrap.servers": worker_env.brokers})
    tiny = NewTopic(alerts_topic, num_partitions=1, replication_factor=1, config={"max.message.bytes": "200"})
    admin.create_topics([tiny])[alerts_topic].result(timeout=30)  # the worker leaves existing topics alone
    t0 = datetime.now(UTC) - timedelta(seconds=30)
    forged = scoring_event("forged-0001", 1, t0, {"x": 1.0})
    _produce(worker_env, "none", [(b"model-0", orjson.dumps(sign_document(forged, "scoring-1", b"x" * 32)))])

    worker = worker_env.start_worker()
    assert worker.wait(timeout=120) == 1, worker_env.logs()
    assert "resumes from the last commit" in worker_env.logs()
    assert worker_env.committed() == 0


def test_a_second_worker_takes_over_half_the_partitions_and_nothing_is_lost(
    worker_env: WorkerEnv, tmp_path_factory: pytest.TempPathFactory
) -> None:
    _configure(worker_env)
    second_env = WorkerEnv(tmp_path_factory.mktemp("second"), worker_env.brokers, worker_env.prefix)
    second_env.extra.update(worker_env.extra)
    t0 = datetime.now(UTC) - timedelta(seconds=30)
    first = worker_env.start_worker()
    worker_env.wait_until("SELECT count() FROM events", 0)
    _produce(worker_env, "lz4", _events("before", t0))
    worker_env.wait_until("SELECT count() FROM events_unique", PER_CODEC)

    try:
        second_env.start_worker()  # the group rebalances: the first worker commits, then gives up half
        second_env.wait_until("SELECT count() FROM events", 0)
        deadline = time.monotonic() + 60
        while "revoked" not in worker_env.logs() and time.monotonic() < deadline:
            time.sleep(0.5)
        _produce(worker_env, "lz4", _events("after", t0 + timedelta(seconds=1)))
        deadline = time.monotonic() + 60
        while worker_env.committed() < 2 * PER_CODEC and time.monotonic() < deadline:
            time.sleep(0.5)
        query = "SELECT DISTINCT event_id FROM events"
        stored = [{row[0] for row in env.sql(query)} for env in (worker_env, second_env)]
    finally:
        second_env.stop_all()
    assert stored[0] | stored[1] == {f"{p}-{n:04d}" for p in ("before", "after") for n in range(PER_CODEC)}
    assert stored[1], "the second worker was given nothing"
    assert {e for e in stored[1] if e.startswith("before")} <= stored[0]  # only redelivered, never new
    first.send_signal(signal.SIGTERM)
    assert first.wait(timeout=60) == 0


def _send_at(env: WorkerEnv, event: dict[str, object], at: datetime) -> None:
    """A signed event sent with a producer-set message time, as a replaying attacker would."""
    producer = Producer({"bootstrap.servers": env.brokers})
    value = orjson.dumps(sign_document(event, "scoring-1", SECRET))
    producer.produce(env.topic("ai.inference"), value, b"risk-v1", timestamp=int(at.timestamp() * 1000))
    assert producer.flush(30) == 0


def _timestamp_type(env: WorkerEnv) -> str:
    admin = AdminClient({"bootstrap.servers": env.brokers})
    resource = ConfigResource(ConfigResource.Type.TOPIC, env.topic("ai.inference"))
    return str(
        admin.describe_configs([resource])[resource].result(timeout=30)["message.timestamp.type"].value
    )


def test_a_captured_event_resent_on_a_producer_created_topic_is_stale(worker_env: WorkerEnv) -> None:
    """The producer created the topic (CreateTime); the worker makes the broker's clock the message time."""
    _configure(worker_env)
    now = datetime.now(UTC)
    _send_at(worker_env, scoring_event("first-0001", 1, now, {"x": 1.0}), now)  # auto-creates the topic
    assert _timestamp_type(worker_env) == "CreateTime"
    worker_env.start_worker()
    worker_env.wait_until("SELECT count() FROM events_unique", 1)
    assert _timestamp_type(worker_env) == "LogAppendTime"
    assert "switched" in worker_env.logs()

    captured = now - timedelta(days=2)
    _send_at(worker_env, scoring_event("captured-0001", 2, captured, {"x": 1.0}), captured)
    worker_env.wait_until("SELECT count() FROM events_unique", 2)
    [[verified, reason]] = worker_env.sql(
        "SELECT verified, verify_reason FROM events_unique WHERE event_id = 'captured-0001'"
    )
    assert (verified, reason) == ("false", "stale")


def test_a_worker_not_allowed_to_fix_producer_timestamps_refuses_to_start(worker_env: WorkerEnv) -> None:
    _configure(worker_env)
    worker_env.extra["VIGIL_KAFKA_FIX_TIMESTAMP_TYPE"] = "false"
    now = datetime.now(UTC)
    _send_at(worker_env, scoring_event("first-0001", 1, now, {"x": 1.0}), now)
    worker = worker_env.start_worker()
    assert worker.wait(timeout=120) == 1
    assert "keep producer-set timestamps (CreateTime)" in worker_env.logs()
    assert "Traceback" not in worker_env.logs()
    assert _timestamp_type(worker_env) == "CreateTime"


def test_a_lone_event_is_stored_without_waiting_for_a_batch_to_fill(worker_env: WorkerEnv) -> None:
    """At moderate rates the worker takes what has arrived, not a full batch or its time limit."""
    _configure(worker_env)
    worker_env.extra["VIGIL_KAFKA_BATCH_WITHIN"] = "20"
    worker_env.start_worker()
    worker_env.wait_until("SELECT count() FROM events", 0)
    time.sleep(1)  # joined the group, waiting in an empty batch
    now = datetime.now(UTC)
    sent = time.monotonic()
    _send_at(worker_env, scoring_event("lone-0001", 1, now, {"x": 1.0}), now)
    worker_env.wait_until("SELECT count() FROM events_unique", 1, timeout=15)
    assert time.monotonic() - sent < 10, "the event waited for the batch time limit"
