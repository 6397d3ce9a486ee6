"""The Python client through the real broker: every event confirmed, on its key's partition, verified."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka.partitioner import murmur2
from confluent_kafka.admin import AdminClient, NewTopic
from vigil_client import HmacSigner, Publisher, message_key

from schemas.json_schema import EXAMPLES
from tests.clients.reference import load_vectors, vector_keyring, vigil_verdict
from tests.integration.conftest import consume_all

pytestmark = pytest.mark.integration
PARTITIONS = 4


def _java_partition(key: bytes) -> int:
    """The Java client's default partitioner, which every Vigil producer must agree with."""
    return (murmur2(key) & 0x7FFFFFFF) % PARTITIONS


def test_published_events_are_confirmed_on_their_key_partition_and_verify(kafka_brokers: str) -> None:
    prefix = f"client-{uuid.uuid4().hex[:8]}."
    admin = AdminClient({"bootstrap.servers": kafka_brokers})
    topics = [f"{prefix}ai.inference", f"{prefix}ai.access"]
    for future in admin.create_topics([NewTopic(t, PARTITIONS, 1) for t in topics]).values():
        future.result(timeout=60)
    vectors = load_vectors()
    signer = HmacSigner(vectors["key_id"], bytes.fromhex(vectors["secret_hex"]))
    events = [
        {**EXAMPLES["inference"], "event_id": f"inf-{n}", "model_id": f"model-<{n % 7}>&ü"} for n in range(21)
    ] + [
        {**EXAMPLES["access"], "event_id": f"acc-{n}", "principal": {"id": f"user-{n}", "kind": "user"}}
        for n in range(9)
    ]

    with Publisher(kafka_brokers, signer, topic_prefix=prefix) as publisher:
        for event in events:
            publisher.send(event)
        report = publisher.flush(timeout=60)

    assert report.ok, report
    assert sorted(d.event_id for d in report.delivered) == sorted(e["event_id"] for e in events)
    key_by_id = {e["event_id"]: message_key(e) for e in events}
    for delivered in report.delivered:
        assert delivered.partition == _java_partition(key_by_id[delivered.event_id])
    records = [
        record
        for topic, expected in ((topics[0], 21), (topics[1], 9))
        for record in asyncio.run(consume_all(kafka_brokers, topic, expected))
    ]
    assert len(records) == len(events)
    keyring = vector_keyring()
    for record in records:
        assert record.partition == _java_partition(record.key)  # type: ignore[attr-defined]
        assert vigil_verdict(record.value, keyring)[0] == "ok"  # type: ignore[attr-defined]
