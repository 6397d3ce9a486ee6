"""The ingest worker: confluent-kafka's consumer feeding the pipeline, batch after batch.

Three threads, each owning what it touches:

- the main thread owns the consumer: it fetches the next batch (``consume``), serves
  the rebalance callbacks and commits offsets, never anything slow in between;
- the pipeline thread owns the pipeline's state (replay memory, detectors): it
  processes one batch while the main thread fetches the next;
- the writer thread of ``BatchCheckpoint`` stores and publishes the batch before.

A batch's offsets are committed only after its rows are stored and its dead letters,
alerts and audit checkpoints are confirmed by the broker, strictly in order
(``streams.checkpoint``). Delivery is therefore at least once: after a crash the
next worker resumes from the last commit, and stored rows of a replayed batch
replace the first copies (the ``*_unique`` views count them once). Alerts go no
further than ``ai.alerts``: routing, grouping and delivery belong to ``vigil
notifier`` (``streams.notifier``), one for all workers.

Rebalances use the eager ``range`` assignor, which gives a worker the same partition
numbers of every source topic: detector state is kept per partition number. When
partitions are revoked, the batch being processed is finished, stored and committed,
then the detector state of those partitions is saved and dropped
(``Checkpointer.release``); assigned partitions restore theirs (``Checkpointer.prepare``).
Detector snapshots on the interval are taken only when every processed batch is
stored, so a snapshot never holds state whose findings could still be lost.

Errors: storage is retried with back-off while the worker is not stopping. Anything
else that fails (a broker that does not confirm, a fatal client error, a bug) ends
the run with the exception and nothing further is committed; ``vigil worker`` then
exits non-zero and the next start resumes from the last commit.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

from confluent_kafka import (
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

from detectors.snapshots import Checkpointer, ClickHouseSnapshots, snapshot_key
from schemas.envelopes import Headers
from sinks.clickhouse import ClickHouseStore, connect
from sinks.kafka import KafkaProducer
from streams.checkpoint import BatchCheckpoint, Offsets
from streams.outputs import KafkaOutputs
from streams.topics import DEADLETTER_TOPIC, SOURCE_TOPICS, max_message_bytes
from vigil.kafka_clients import librdkafka_config
from vigil.metrics import Health, MeasuredStore, Metrics
from vigil.pipeline import BatchResult, Pipeline, RawMessage
from vigil.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")

FETCH_SLICE_SECONDS = 0.02
"""How long one ``consume`` call may wait while a batch is being gathered: the pipeline
thread's progress is looked at this often."""

REBALANCE_ERRORS = frozenset(
    {
        KafkaError.REBALANCE_IN_PROGRESS,
        KafkaError.ILLEGAL_GENERATION,
        KafkaError.UNKNOWN_MEMBER_ID,
        KafkaError._NO_OFFSET,
    }
)
"""Commit failures that only mean the partitions moved on: the batch is redelivered, not lost."""


def consumer_config(settings: Settings) -> dict[str, Any]:
    kafka = settings.kafka
    session_ms = int(kafka.session_timeout * 1000)
    return {
        **librdkafka_config(settings),
        "group.id": kafka.group_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "partition.assignment.strategy": "range",
        "session.timeout.ms": session_ms,
        "heartbeat.interval.ms": max(session_ms // 10, 100),
        "max.poll.interval.ms": max(int(kafka.max_poll_interval * 1000), session_ms),
        "fetch.max.bytes": kafka.fetch_max_bytes,
        "queued.max.messages.kbytes": kafka.queued_max_kbytes,
    }


def consumer_health(settings: Settings) -> Health:
    """Ready only once the group has assigned this worker some partitions."""
    return Health(settings.metrics.stall_seconds, needs_assignment=True)


@dataclass
class _Processing:
    offsets: Offsets
    result: Future[BatchResult]


class IngestWorker:
    """One member of the consumer group, from subscribe to close.

    ``checkpoint`` builds the ``BatchCheckpoint`` from the worker's commit function: the
    checkpoint decides when offsets may be committed, the worker how (its consumer).
    ``detectors`` restores, snapshots and releases detector state per partition.
    """

    def __init__(
        self,
        settings: Settings,
        pipeline: Pipeline,
        checkpoint: Callable[[Callable[[Offsets], None]], BatchCheckpoint],
        detectors: Checkpointer | None = None,
        stopping: threading.Event | None = None,
        clock: Callable[[], float] = time.monotonic,
        metrics: Metrics | None = None,
        health: Health | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.detectors = detectors
        self.stopping = stopping if stopping is not None else threading.Event()
        self.topics = [settings.topic(t) for t in SOURCE_TOPICS]
        self.batch_size = settings.kafka.batch_size
        self.batch_within = settings.kafka.batch_within
        self.snapshot_every = settings.detectors.snapshot_seconds
        self.clock = clock
        # Observability: counted once per batch and per rebalance, commit or statistics report.
        self.metrics = metrics if metrics is not None else Metrics()
        self.health = health if health is not None else consumer_health(settings)
        self.consumer = Consumer(
            {
                **consumer_config(settings),
                "error_cb": self._client_error,
                "stats_cb": self.metrics.kafka_statistics,
                "statistics.interval.ms": int(settings.metrics.kafka_stats_seconds * 1000),
            }
        )
        self.checkpoint = checkpoint(self._commit)
        self.messages = 0
        self._pipeline_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vigil-pipeline")
        self._processing: _Processing | None = None
        self._assignment: set[tuple[str, int]] = set()
        self._rebalanced = False
        self._failed = False
        self._fatal: KafkaError | None = None
        self._next_snapshot = clock() + self.snapshot_every

    def run(self) -> None:
        """Consume until ``stopping`` is set; raise whatever ends the run early."""
        self.consumer.subscribe(self.topics, on_assign=self._assigned, on_revoke=self._revoked)
        try:
            while not self.stopping.is_set():
                self.health.beat()
                messages, offsets = self._consume()
                self._hand_over()
                self.checkpoint.flush(wait=not messages)  # nothing to overlap with: finish what is written
                self._snapshot_if_due()
                if messages:
                    self._processing = _Processing(
                        offsets, self._pipeline_thread.submit(self._process, messages)
                    )
            self._hand_over()
            self.checkpoint.flush()
        except BaseException:
            self._failed = True  # from here on nothing is committed, not even by close's revoke
            raise
        finally:
            self._close()

    def _consume(self) -> tuple[list[RawMessage], Offsets]:
        """The next batch: as soon as the pipeline can take it, never more than ``batch_size``.

        While the pipeline works on a batch, messages accumulate here, so batches grow
        with load and per-batch costs (one insert per table) stay spread thin. An idle
        pipeline takes whatever has arrived after a short fetch instead of waiting for a
        full batch: at moderate rates that is what keeps publish-to-alert latency low.
        ``batch_within`` bounds the wait for a first message.
        """
        self._rebalanced = False
        deadline = self.clock() + self.batch_within
        records: list[Message] = []
        while len(records) < self.batch_size and not self.stopping.is_set():
            records += self.consumer.consume(self.batch_size - len(records), FETCH_SLICE_SECONDS)
            if self._fatal is not None:
                raise KafkaException(self._fatal)
            if self._ready_for(records) or self.clock() >= deadline:
                break
        if self._rebalanced:  # anything fetched for partitions this worker gave away is theirs now
            records = [r for r in records if (r.topic(), r.partition()) in self._assignment]
        messages: list[RawMessage] = []
        offsets: Offsets = {}
        for record in records:
            error = record.error()
            if error is not None:
                if error.fatal():
                    raise KafkaException(error)
                log.warning("kafka consumer: %s", error.str())
                continue
            topic, partition, offset = record.topic(), record.partition(), record.offset()
            if topic is None or partition is None or offset is None:  # librdkafka: error events only
                raise RuntimeError(f"a consumed record without a position: {topic} {partition} {offset}")
            kind, millis = record.timestamp()
            messages.append(
                RawMessage(
                    value=record.value() or b"",
                    topic=topic,
                    partition=partition,
                    offset=offset,
                    key=record.key(),
                    # A consumed record's headers are (name, bytes | None) pairs; the stub's type
                    # also covers the dict that produce() accepts.
                    headers=cast("Headers | None", record.headers()),
                    timestamp=None
                    if kind == TIMESTAMP_NOT_AVAILABLE
                    else datetime.fromtimestamp(millis / 1000, UTC),
                )
            )
            offsets[(topic, partition)] = offset + 1
        self.messages += len(messages)
        return messages, offsets

    def _ready_for(self, records: list[Message]) -> bool:
        """Whether to stop gathering: a processed batch waits to be stored, or an idle
        pipeline can take what arrived, or a stored batch waits to be committed."""
        if self._processing is not None:
            return self._processing.result.done()
        return bool(records) or self.checkpoint.written

    def _process(self, messages: Sequence[RawMessage]) -> BatchResult:
        started = time.perf_counter()
        result = self.pipeline.process(messages)
        elapsed = time.perf_counter() - started
        log.debug("%d messages processed in %.3fs", len(messages), elapsed)
        self.metrics.count_batch(result, elapsed)
        return result

    def _hand_over(self) -> None:
        """The batch processed meanwhile goes to the checkpoint (which finishes the one before)."""
        processing, self._processing = self._processing, None
        if processing is not None:
            self.checkpoint.add(processing.result.result(), processing.offsets)

    def _snapshot_if_due(self) -> None:
        if self.detectors is None or self.snapshot_every <= 0 or self.clock() < self._next_snapshot:
            return
        self.checkpoint.flush()  # the state may then hold only stored batches
        self._on_pipeline_thread(self.detectors.after_batch)
        self._next_snapshot = self.clock() + self.snapshot_every

    def _on_pipeline_thread(self, work: Callable[..., T], *args: Any) -> T:
        """State of the pipeline is touched only from its thread, between batches."""
        return self._pipeline_thread.submit(work, *args).result()

    def _assigned(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._assignment |= {(tp.topic, tp.partition) for tp in partitions}
        self._rebalanced = True
        self.metrics.assigned((tp.topic, tp.partition) for tp in partitions)
        self.health.assigned = bool(self._assignment)
        log.info("assigned %s", _describe(partitions))
        if self.detectors is not None and not self._failed:
            self._on_pipeline_thread(self.detectors.prepare, {tp.partition for tp in partitions})

    def _revoked(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Finish and commit what was taken from these partitions, then hand their state on."""
        self._assignment -= {(tp.topic, tp.partition) for tp in partitions}
        self._rebalanced = True
        self.metrics.revoked((tp.topic, tp.partition) for tp in partitions)
        self.health.assigned = bool(self._assignment)
        log.info("revoked %s", _describe(partitions))
        if self._failed:
            return
        self._hand_over()
        self.checkpoint.flush()
        if self.detectors is not None:
            self._on_pipeline_thread(self.detectors.release, {tp.partition for tp in partitions})

    def _commit(self, offsets: Offsets) -> None:
        wanted = [TopicPartition(topic, partition, offset) for (topic, partition), offset in offsets.items()]
        try:
            committed = self.consumer.commit(offsets=wanted, asynchronous=False) or []
        except KafkaException as error:
            if error.args[0].code() not in REBALANCE_ERRORS:
                raise
            log.warning("offsets not committed (%s): the batch will be delivered again", error.args[0].str())
            return
        failed = [(tp, tp.error) for tp in committed if tp.error is not None]
        if failed:
            if all(error.code() in REBALANCE_ERRORS for _, error in failed):
                log.warning(
                    "offsets of %s not committed: delivered again", _describe([tp for tp, _ in failed])
                )
                return
            raise KafkaException(failed[0][1])
        self.metrics.committed(offsets)

    def _client_error(self, error: KafkaError) -> None:
        """librdkafka retries connection trouble by itself; a fatal error ends the run."""
        if error.fatal():
            self._fatal = error
        log.warning("kafka consumer: %s", error.str())

    def _close(self) -> None:
        try:
            self.consumer.close()  # leaves the group; revokes (and so commits) unless the run failed
        except Exception:
            if not self._failed:
                raise
            log.exception("closing the consumer failed")
        finally:
            self._pipeline_thread.shutdown(wait=True)
            self.checkpoint.close()


def _describe(partitions: Sequence[TopicPartition]) -> str:
    by_topic: dict[str, list[int]] = {}
    for tp in partitions:
        by_topic.setdefault(tp.topic, []).append(tp.partition)
    return ", ".join(f"{t}{sorted(p)}" for t, p in sorted(by_topic.items())) or "nothing"


def detector_checkpoints(settings: Settings, pipeline: Pipeline) -> Checkpointer:
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


def run_worker(
    settings: Settings,
    pipeline: Pipeline,
    store: ClickHouseStore,
    stopping: threading.Event,
    metrics: Metrics | None = None,
    health: Health | None = None,
) -> IngestWorker:
    """Run the worker until ``stopping`` is set; returns it (for its counts) or raises."""
    metrics = metrics if metrics is not None else Metrics()
    health = health if health is not None else consumer_health(settings)
    producer = KafkaProducer(
        librdkafka_config(settings),
        delivery_timeout=settings.kafka.delivery_timeout,
        max_message_bytes=settings.kafka.deadletter_max_bytes,
    )
    deadletter_limit = max_message_bytes(settings, settings.topic(DEADLETTER_TOPIC))
    outputs = KafkaOutputs(
        settings, producer, store, min(deadletter_limit, settings.kafka.deadletter_max_bytes)
    )

    def checkpoint(commit: Callable[[Offsets], None]) -> BatchCheckpoint:
        measured = MeasuredStore(store, metrics, health)
        return BatchCheckpoint(measured, outputs=outputs, commit=commit, stopping=stopping)

    metrics.queue_depth("producer", producer.queued)
    worker = IngestWorker(
        settings,
        pipeline,
        checkpoint,
        detector_checkpoints(settings, pipeline),
        stopping,
        metrics=metrics,
        health=health,
    )
    try:
        worker.run()
    finally:
        producer.close()
    return worker
