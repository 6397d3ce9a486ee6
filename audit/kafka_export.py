"""Checkpoints on the compacted ``ai.audit`` topic, keyed by stream.

Compaction keeps at least the latest checkpoint of every stream for as long as the
topic exists, which is exactly what reveals a deleted tail; consumers that archive
the topic as it flows keep every checkpoint.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from audit.checkpoint import Checkpoint, CheckpointFormatError
from audit.store import AuditedStore
from audit.verify import ExternalCheckpoint
from sinks.clickhouse import ClickHouseStore


async def publish_checkpoints(topic: faust.TopicT, store: ClickHouseStore) -> None:
    """Send the checkpoints stored since the last call; raise (and keep them) if Kafka fails."""
    if not isinstance(store, AuditedStore):
        return
    checkpoints = store.exports.take_outbox()
    if not checkpoints:
        return
    try:
        pending: list[Any] = [
            await topic.send(key=c.stream.encode(), value=c.to_json(), force=True) for c in checkpoints
        ]
        await asyncio.gather(*pending)
    except BaseException:
        store.exports.return_to_outbox(checkpoints)
        raise


async def read_checkpoints(brokers: str, topic: str, timeout: float = 30.0) -> list[ExternalCheckpoint]:
    """Everything on the topic, from the beginning to the end offsets read at start."""
    partitions = [TopicPartition(topic, p) for p in await _partitions(brokers, topic)]
    consumer = AIOKafkaConsumer(bootstrap_servers=brokers, enable_auto_commit=False, group_id=None)
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


async def _partitions(brokers: str, topic: str) -> list[int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=brokers)
    await admin.start()
    try:
        (description,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    if description["error_code"] or not description["partitions"]:
        raise LookupError(f"topic {topic} does not exist on {brokers}")
    return sorted(p["partition"] for p in description["partitions"])


def _copy(topic: str, record: Any) -> ExternalCheckpoint:
    origin = f"kafka {topic}[{record.partition}]@{record.offset}"
    stream = (record.key or b"").decode("utf-8", "replace")
    try:
        checkpoint = Checkpoint.from_json(record.value or b"")
    except CheckpointFormatError as error:
        return ExternalCheckpoint(origin, stream, None, str(error))
    return ExternalCheckpoint(origin, checkpoint.stream, checkpoint)
