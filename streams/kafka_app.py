"""The Kafka driver: a faust-streaming app whose agent stays thin.

Delivery is at least once. Messages are taken in batches (``take_events``); a
batch's rows are stored in ClickHouse, its rejects published to the dead-letter
topic and its alerts to the alerts topic, and only then does the loop body end so
faust acknowledges the batch's offsets. faust acknowledges even when the body
raises, so nothing may raise: per-message errors are rejects (inside the
pipeline), and storage errors are retried with back-off until they succeed. If
the worker is stopped while a batch is still unstored, that batch's messages are
withheld from acknowledgement so their offsets are never committed.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import faust
import orjson
from faust.types import TP, EventT

from audit.kafka_export import publish_checkpoints
from detectors.snapshots import Checkpointer, ClickHouseSnapshots, snapshot_key
from schemas.records import AlertRow, RejectedRow
from sinks.clickhouse import ClickHouseStore, connect
from streams.topics import ALERTS_TOPIC, AUDIT_TOPIC, DEADLETTER_TOPIC, SOURCE_TOPICS
from vigil.pipeline import BatchResult, Pipeline, RawMessage
from vigil.runtime import Notifiers
from vigil.settings import Settings

log = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 30.0


def create_app(
    settings: Settings, pipeline: Pipeline, store: ClickHouseStore, notifiers: Notifiers
) -> faust.App:
    app = faust.App(
        settings.kafka.group_id,
        broker=f"kafka://{settings.kafka_brokers}",
        store="memory://",
        web_enabled=False,
        key_serializer="raw",
        value_serializer="raw",
        topic_partitions=settings.kafka.partitions,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        broker_session_timeout=settings.kafka.session_timeout,
        broker_heartbeat_interval=settings.kafka.session_timeout / 10,
    )
    sources = app.topic(*(settings.topic(t) for t in SOURCE_TOPICS), value_serializer="raw")
    alerts_topic = app.topic(settings.topic(ALERTS_TOPIC), value_serializer="raw")
    audit_topic = app.topic(settings.topic(AUDIT_TOPIC), value_serializer="raw")
    deadletter_topic = app.topic(settings.topic(DEADLETTER_TOPIC), value_serializer="raw")
    # One thread owns the pipeline's state and the store client: batches run in order.
    worker_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vigil-pipeline")
    stopping = threading.Event()

    checkpoints = _detector_checkpoints(settings, pipeline)

    def process_and_store(messages: list[RawMessage]) -> BatchResult:
        checkpoints.prepare(m.partition for m in messages)  # resume baselines of new partitions
        result = pipeline.process(messages)
        _store_until_done(store, result, stopping)
        checkpoints.after_batch()
        return result

    @app.on_partitions_revoked.connect
    async def release_detector_state(sender: faust.App, revoked: set[TP], **_: Any) -> None:
        partitions = {tp.partition for tp in revoked}
        await asyncio.get_running_loop().run_in_executor(worker_thread, checkpoints.release, partitions)

    @app.agent(sources, name="vigil-pipeline")
    async def pipeline_agent(stream: faust.StreamT[bytes]) -> None:
        async for events in stream.take_events(settings.kafka.batch_size, within=settings.kafka.batch_within):
            messages = [_raw(e) for e in events]
            try:
                result = await asyncio.get_running_loop().run_in_executor(
                    worker_thread, process_and_store, messages
                )
                await _publish(deadletter_topic, alerts_topic, result.rejected, result.alerts)
                await publish_checkpoints(audit_topic, store)
            except BaseException:
                stopping.set()
                _withhold(events)
                raise
            for alert in result.alerts:
                notifiers.notify(alert)

    return app


def _detector_checkpoints(settings: Settings, pipeline: Pipeline) -> Checkpointer:
    """Detector state snapshots in the store, through a client of their own."""
    key = settings.detectors.snapshot_key
    return Checkpointer(
        pipeline.detect,
        ClickHouseSnapshots(connect(settings.store_url, already_owned=True)),
        scope=f"{settings.kafka.topic_prefix}{settings.kafka.group_id}",
        key=snapshot_key(
            key.get_secret_value() if key else None, settings.data_dir, shared_store=not settings.embedded
        ),
        interval=settings.detectors.snapshot_seconds,
    )


def _raw(event: EventT) -> RawMessage:
    message = event.message
    return RawMessage(
        value=message.value or b"",
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=message.key,
        timestamp=datetime.fromtimestamp(message.timestamp, UTC) if message.timestamp else None,
    )


class StoreAbortedError(RuntimeError):
    """The worker is stopping while a batch is still unstored."""


def _store_until_done(store: ClickHouseStore, result: BatchResult, stopping: threading.Event) -> None:
    """Retry until stored: an unstored batch must block its partitions, not be skipped."""
    delay = 0.5
    while True:
        try:
            store.write(result.tables())
            return
        except Exception as error:
            log.error("storing a batch failed, retrying in %.1fs: %s", delay, error)
            if stopping.wait(delay):
                raise StoreAbortedError("worker stopping; batch left uncommitted") from error
            delay = min(delay * 2, MAX_BACKOFF_SECONDS)


async def _publish(
    deadletter_topic: faust.TopicT,
    alerts_topic: faust.TopicT,
    rejected: Sequence[RejectedRow],
    alerts: Sequence[AlertRow],
) -> None:
    pending: list[Any] = []
    for row in rejected:
        pending.append(
            await deadletter_topic.send(
                key=row.key.encode() or None,
                value=base64.b64decode(row.raw_base64),
                headers=_deadletter_headers(row),
                force=True,
            )
        )
    for alert in alerts:
        pending.append(
            await alerts_topic.send(
                key=alert.fingerprint.encode(),
                value=orjson.dumps(alert._asdict()),
                force=True,
            )
        )
    if pending:
        await asyncio.gather(*pending)


def _deadletter_headers(row: RejectedRow) -> list[tuple[str, bytes]]:
    return [
        ("vigil.rejected_id", row.rejected_id.encode()),
        ("vigil.code", row.code.encode()),
        ("vigil.reason", row.reason.encode()),
        ("vigil.topic", row.topic.encode()),
        ("vigil.partition", str(row.partition).encode()),
        ("vigil.offset", str(row.offset).encode()),
    ]


def _withhold(events: Sequence[EventT]) -> None:
    """Mark messages acknowledged without telling the consumer: offsets stay uncommitted."""
    for event in events:
        event.message.acked = True
