"""Standard envelopes through the real broker and worker: CloudEvents in both modes and a
``traceparent`` header arrive as verified events that keep their trace ids."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import yaml
from confluent_kafka import Producer
from vigil_client import HmacSigner, encode, sign, to_cloudevent

from tests.integration.conftest import WorkerEnv, scoring_event

pytestmark = pytest.mark.integration

SECRET = b"envelopes-integration-secret-0123456789"
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
HEADER_TRACE = "0af7651916cd43dd8448eb211c80319c"


def test_cloudevents_and_a_traceparent_header_are_stored_verified_with_their_trace(
    worker_env: WorkerEnv,
) -> None:
    keys = {"keys": [{"key_id": "scoring-1", "secret": "hex:" + SECRET.hex(), "sources": ["scoring-api"]}]}
    (worker_env.data_dir / "keys.yaml").write_text(yaml.safe_dump(keys))
    worker_env.extra["VIGIL_KEYS_FILE"] = str(worker_env.data_dir / "keys.yaml")
    worker_env.start_worker()
    worker_env.wait_until("SELECT count() + 1 FROM events_unique", 1)

    signer = HmacSigner("scoring-1", SECRET)
    now = datetime.now(UTC)
    events = {
        name: sign(scoring_event(name, n, now, {"x": 1.0}), signer) for n, name in enumerate(("s", "b", "h"))
    }
    traceparent = f"00-{TRACE}-00f067aa0ba902b7-01"
    messages = [
        to_cloudevent(events["s"], "structured", traceparent=traceparent),
        to_cloudevent(events["b"], "binary", traceparent=traceparent),
        ([("traceparent", f"00-{HEADER_TRACE}-b7ad6b7169203331-01".encode())], encode(events["h"])),
    ]
    producer = Producer({"bootstrap.servers": worker_env.brokers, "enable.idempotence": True})
    for headers, value in messages:
        producer.produce(worker_env.topic("ai.inference"), value, b"risk-v1", headers=headers)
    assert producer.flush(30) == 0

    worker_env.wait_until("SELECT count() FROM events_unique", 3)
    rows = worker_env.sql(
        "SELECT event_id, verified, verify_reason, trace_id FROM events_unique ORDER BY event_id"
    )
    assert rows == [
        ["b", "true", "ok", TRACE],
        ["h", "true", "ok", HEADER_TRACE],
        ["s", "true", "ok", TRACE],
    ]
    assert worker_env.scalar("SELECT count() FROM rejected_unique") == 0
