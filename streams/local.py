"""The in-process driver behind ``vigil run`` and ``vigil demo``.

Same pipeline as the Kafka worker, fed from JSON lines: each line is one message,
its line number the offset. Batches go through the same ``BatchCheckpoint`` as the
worker's (stored on a writer thread while the next batch is processed, then their
alerts sent); there is just no offset to commit.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice

from sinks.clickhouse import ClickHouseStore
from streams.checkpoint import BatchCheckpoint
from vigil.metrics import Health, MeasuredStore, Metrics
from vigil.pipeline import BatchResult, Pipeline, RawMessage
from vigil.runtime import Notifiers


@dataclass
class RunStats:
    messages: int = 0
    events: int = 0
    rejected: int = 0
    findings: int = 0
    alert_ids: set[str] = field(default_factory=set)
    """Alert instances raised: a batch has a row for every alert it touched, so one
    alert recurring across batches has several rows but is one alert."""
    decisions: Counter[str] = field(default_factory=Counter)
    elapsed: float = 0.0

    def add(self, result: BatchResult) -> None:
        self.events += len(result.events)
        self.rejected += len(result.rejected)
        self.findings += len(result.findings)
        self.alert_ids.update(a.alert_id for a in result.alerts)
        self.messages += len(result.events) + len(result.rejected)
        self.decisions.update(d.decision for d in result.decisions)

    @property
    def alerts(self) -> int:
        return len(self.alert_ids)

    @property
    def rate(self) -> float:
        return self.messages / self.elapsed if self.elapsed else 0.0


def messages_from_lines(lines: Iterable[bytes], topic: str) -> Iterator[RawMessage]:
    """Blank lines are skipped (they are framing, not messages)."""
    for number, line in enumerate(lines, start=1):
        value = line.rstrip(b"\r\n")
        if value.strip():
            yield RawMessage(value=value, topic=topic, partition=0, offset=number)


def batches(messages: Iterable[RawMessage], size: int) -> Iterator[list[RawMessage]]:
    iterator = iter(messages)
    while batch := list(islice(iterator, size)):
        yield batch


def run(
    messages: Iterable[RawMessage],
    pipeline: Pipeline,
    store: ClickHouseStore,
    notifiers: Notifiers,
    batch_size: int = 2000,
    metrics: Metrics | None = None,
    health: Health | None = None,
) -> RunStats:
    """Process ``messages`` to the end; ``metrics`` and ``health`` are counted per batch."""
    metrics = metrics if metrics is not None else Metrics()
    health = health if health is not None else Health(stall_seconds=float("inf"))
    stats = RunStats()
    started = time.perf_counter()
    checkpoint = BatchCheckpoint(MeasuredStore(store, metrics, health), notifiers)
    try:
        for batch in batches(messages, batch_size):
            health.beat()
            processing = time.perf_counter()
            result = pipeline.process(batch)
            metrics.count_batch(result, time.perf_counter() - processing)
            checkpoint.add(result)
            stats.add(result)
            health.idle()  # reading the next lines may wait on a quiet input
        checkpoint.flush()
    finally:
        checkpoint.close()
    stats.elapsed = time.perf_counter() - started
    return stats
