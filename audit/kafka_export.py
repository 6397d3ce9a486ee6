"""Checkpoints on the compacted ``ai.audit`` topic, keyed by stream.

Compaction keeps at least the latest checkpoint of every stream for as long as the
topic exists, which is exactly what reveals a deleted tail; consumers that archive
the topic as it flows keep every checkpoint.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from audit.checkpoint import Checkpoint, CheckpointFormatError
from audit.store import AuditedStore
from audit.verify import ExternalCheckpoint
from sinks.clickhouse import ClickHouseStore


class Producer(Protocol):
    """Any producer that queues messages and then confirms all of them (or raises)."""

    def send(self, topic: str, value: bytes, key: bytes | None = None) -> None: ...

    def confirm(self) -> None: ...


def publish_checkpoints(producer: Producer, topic: str, store: ClickHouseStore) -> None:
    """Send the checkpoints stored since the last call; raise (and keep them) if Kafka fails.

    ``confirm`` waits for everything the producer has queued, so a caller that sent other
    messages of the same batch first learns here that all of them are on the broker.
    """
    checkpoints = store.exports.take_outbox() if isinstance(store, AuditedStore) else []
    try:
        for checkpoint in checkpoints:
            producer.send(topic, checkpoint.to_json(), key=checkpoint.stream.encode())
        producer.confirm()
    except BaseException:
        if isinstance(store, AuditedStore):
            store.exports.return_to_outbox(checkpoints)
        raise


async def read_checkpoints(
    client: dict[str, Any], topic: str, timeout: float = 30.0
) -> list[ExternalCheckpoint]:
    """Everything on the topic, from the beginning to the end offsets read at start.

    ``client``: aiokafka keyword arguments (bootstrap servers and security), as every
    client of the cluster connects.
    """
    partitions = [TopicPartition(topic, p) for p in await _partitions(client, topic)]
    consumer = AIOKafkaConsumer(**client, enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        copies: list[ExternalCheckpoint] = []
        deadline = time.monotonic() + timeout
        while [p for p in partitions if await consumer.position(p) < ends[p]]:
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {topic} did not reach its end within {timeout:.0f}s")
            batches = await consumer.getmany(*partitions, timeout_ms=500)
            for records in batches.values():
                copies.extend(_copy(topic, record) for record in records)
        return copies
    finally:
        await consumer.stop()


async def _partitions(client: dict[str, Any], topic: str) -> list[int]:
    admin = AIOKafkaAdminClient(**client)
    await admin.start()
    try:
        (description,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    if description["error_code"] or not description["partitions"]:
        raise LookupError(f"topic {topic} does not exist on {client['bootstrap_servers']}")
    return sorted(p["partition"] for p in description["partitions"])


def _copy(topic: str, record: Any) -> ExternalCheckpoint:
    origin = f"kafka {topic}[{record.partition}]@{record.offset}"
    stream = (record.key or b"").decode("utf-8", "replace")
    try:
        checkpoint = Checkpoint.from_json(record.value or b"")
    except CheckpointFormatError as error:
        return ExternalCheckpoint(origin, stream, None, str(error))
    return ExternalCheckpoint(origin, checkpoint.stream, checkpoint)
