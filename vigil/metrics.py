"""Prometheus metrics and the health endpoints of Vigil's long-running processes.

Every long-running process (``vigil worker``, ``vigil run`` on a stream, the notifier)
owns one ``Metrics`` and one ``Health`` and, when ``VIGIL_METRICS_PORT`` is set,
serves them with ``serve``: ``/metrics`` (Prometheus text format), ``/healthz`` (200
while the processing loop made progress within ``VIGIL_METRICS_STALL_SECONDS``) and
``/readyz`` (200 while the process has work assigned and its store takes writes).

Counting is cheap by design: a driver calls ``count_batch`` once per processed batch
with the pipeline's ``BatchResult``; the rows are tallied per label in one pass
there, never per event inside the pipeline. Counters count what was processed: a
batch delivered again after a crash is counted again, while the ``*_unique`` views
count its rows once.

For the notifier (docs/operations.md#metrics)::

    metrics, health = Metrics(), Health(settings.metrics.stall_seconds)
    server = serve(settings.metrics, metrics, health)   # None when no port is set
    metrics.queue_depth("notifications", lambda: len(outbox))
    ...
    metrics.notification(receiver="slack", result="sent")   # per delivery attempt
    health.beat()                                            # each turn of the loop
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest

from vigil.pipeline import BatchResult
from vigil.settings import MetricsSettings

log = logging.getLogger(__name__)

Partition = tuple[str, int]

BATCH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
"""Seconds: a 2,000-message batch takes tens of milliseconds; a store in trouble, seconds."""
NO_POLICY = "none"
"""``policy_id`` of a decision no policy determined (the default deny)."""


class Metrics:
    """The metric families of one process, in a registry of its own (tests build many)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.messages = Counter(
            "vigil_messages", "Messages processed, by source topic.", ["topic"], registry=r
        )
        self.rejected = Counter("vigil_rejected", "Messages rejected, by reject code.", ["code"], registry=r)
        self.verify = Counter(
            "vigil_verify", "Identity verification outcomes of events, by reason.", ["reason"], registry=r
        )
        self.decisions = Counter("vigil_decisions", "Policy decisions, by outcome.", ["decision"], registry=r)
        self.policy_decisions = Counter(
            "vigil_policy_decisions",
            f"Policies that determined a decision, by outcome and policy id ('{NO_POLICY}': default deny).",
            ["decision", "policy_id"],
            registry=r,
        )
        self.findings = Counter(
            "vigil_findings", "Findings, by stage and detector or rule.", ["stage", "rule"], registry=r
        )
        self.alerts = Counter(
            "vigil_alerts",
            "Alerts raised, by detector or rule and severity.",
            ["rule", "severity"],
            registry=r,
        )
        self.notifications = Counter(
            "vigil_notifications",
            "Notification attempts, by receiver and result (sent, failed, refused, ...).",
            ["receiver", "result"],
            registry=r,
        )
        self.batch_seconds = Histogram(
            "vigil_batch_duration_seconds",
            "Seconds per batch and step: process (the pipeline) or store (one write).",
            ["step"],
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.store_failures = Counter(
            "vigil_store_write_failures", "Store writes that failed; each is retried.", registry=r
        )
        self.queue = Gauge("vigil_queue_depth", "Items waiting, by queue.", ["queue"], registry=r)
        self.lag = Gauge(
            "vigil_consumer_lag",
            "Messages behind the partition's end, from the last committed offset.",
            ["topic", "partition"],
            registry=r,
        )
        self.committed_offset = Gauge(
            "vigil_committed_offset",
            "Last offset committed, per partition (the next one to read).",
            ["topic", "partition"],
            registry=r,
        )
        self.assigned_partitions = Gauge(
            "vigil_assigned_partitions", "Partitions assigned to this consumer.", registry=r
        )
        self._assignment: set[Partition] = set()

    def count_batch(self, result: BatchResult, seconds: float | None = None) -> None:
        """Tally one processed batch: a pass over its rows per family, once per batch."""
        _add(self.messages, Tally([*(r.topic for r in result.events), *(r.topic for r in result.rejected)]))
        _add(self.rejected, Tally(row.code for row in result.rejected))
        _add(self.verify, Tally(row.verify_reason for row in result.events))
        _add(self.decisions, Tally(row.decision for row in result.decisions))
        _add(
            self.policy_decisions,
            Tally(
                (row.decision, policy)
                for row in result.decisions
                for policy in (row.policy_ids or (NO_POLICY,))
            ),
        )
        _add(self.findings, Tally((row.stage, row.detector_or_rule) for row in result.findings))
        _add(self.alerts, Tally((row.detector_or_rule, row.severity) for row in result.alerts))
        if seconds is not None:
            self.batch_seconds.labels("process").observe(seconds)

    def notification(self, receiver: str, result: str) -> None:
        self.notifications.labels(receiver, result).inc()

    def queue_depth(self, queue: str, depth: Callable[[], float]) -> None:
        """Read ``depth()`` at each scrape (it runs on the server's thread: keep it a length)."""
        self.queue.labels(queue).set_function(depth)

    def assigned(self, partitions: Iterable[Partition]) -> None:
        self._assignment |= set(partitions)
        self.assigned_partitions.set(len(self._assignment))

    def revoked(self, partitions: Iterable[Partition]) -> None:
        """Partitions handed to another consumer stop being reported here."""
        for topic, partition in partitions:
            self._assignment.discard((topic, partition))
            for gauge in (self.lag, self.committed_offset):
                with contextlib.suppress(KeyError):
                    gauge.remove(topic, str(partition))
        self.assigned_partitions.set(len(self._assignment))

    def committed(self, offsets: Mapping[Partition, int]) -> None:
        for (topic, partition), offset in offsets.items():
            self.committed_offset.labels(topic, str(partition)).set(offset)

    def kafka_statistics(self, statistics: str) -> None:
        """librdkafka's statistics callback: lag and fetch queue of the assigned partitions.

        ``consumer_lag`` is the partition's end minus the committed offset, as the
        client last saw both; -1 (not known yet, e.g. nothing committed) is left out.
        It runs inside the consumer's ``consume`` call: whatever goes wrong here is
        logged, never raised into the processing loop.
        """
        try:
            self._read_statistics(statistics)
        except Exception as error:
            log.warning("unreadable Kafka client statistics, lag not updated: %r", error)

    def _read_statistics(self, statistics: str) -> None:
        fetched = 0
        for topic, about in orjson.loads(statistics).get("topics", {}).items():
            for number, partition in about.get("partitions", {}).items():
                if (topic, int(number)) not in self._assignment:
                    continue
                fetched += max(partition.get("fetchq_cnt", 0), 0)
                lag = partition.get("consumer_lag", -1)
                if lag >= 0:
                    self.lag.labels(topic, number).set(lag)
        self.queue.labels("fetched").set(fetched)


def _add(counter: Counter, tally: Tally[Any]) -> None:
    for labels, count in tally.items():
        counter.labels(*labels if isinstance(labels, tuple) else (labels,)).inc(count)


class Health:
    """Alive while the loop beats; ready while work is assigned and the store takes writes.

    A worker that is alive but not ready is waiting (for partitions: a group with more
    workers than partitions keeps spares) or retrying its store; one that is not alive
    is stuck and is better restarted, which the next start recovers from.
    """

    def __init__(
        self,
        stall_seconds: float,
        *,
        needs_assignment: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stall_seconds = stall_seconds
        self.clock = clock
        self.assigned = not needs_assignment
        self.store_writable = True
        self._last_beat: float | None = clock()

    def beat(self) -> None:
        """The processing loop came round once more."""
        self._last_beat = self.clock()

    def idle(self) -> None:
        """Waiting for input that may not come for a while (a quiet stdin): not a stall."""
        self._last_beat = None

    def alive(self) -> tuple[bool, str]:
        if self._last_beat is None:
            return True, "ok (waiting for input)"
        quiet = self.clock() - self._last_beat
        if quiet > self.stall_seconds:
            return False, f"no progress for {quiet:.0f}s (limit {self.stall_seconds:.0f}s)"
        return True, "ok"

    def ready(self) -> tuple[bool, str]:
        if not self.assigned:
            return False, "no partitions assigned"
        if not self.store_writable:
            return False, "the last store write failed (retrying)"
        return True, "ok"


class _Writes(Protocol):
    def write(self, tables: dict[str, Any], alerts_stored: Callable[[], None] | None = None) -> None: ...


class MeasuredStore:
    """A store as a driver's checkpoint sees it: each write timed, each failure counted.

    A failed write marks the process not ready until a write succeeds again; the
    checkpoint's retries go through here, so each shows as one failure.
    """

    def __init__(self, store: _Writes, metrics: Metrics, health: Health) -> None:
        self.store = store
        self.metrics = metrics
        self.health = health

    def write(self, tables: dict[str, Any], alerts_stored: Callable[[], None] | None = None) -> None:
        started = time.perf_counter()
        try:
            self.store.write(tables, alerts_stored)
        except Exception:
            self.metrics.store_failures.inc()
            self.health.store_writable = False
            raise
        self.health.store_writable = True
        self.metrics.batch_seconds.labels("store").observe(time.perf_counter() - started)


class MetricsServer:
    """``/metrics``, ``/healthz`` and ``/readyz`` on one port, served from a daemon thread."""

    def __init__(self, metrics: Metrics, health: Health, host: str, port: int) -> None:
        handler = _handler(metrics, health)
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="vigil-metrics", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> MetricsServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class MetricsPortError(RuntimeError):
    """The metrics port cannot be listened on (taken, or not allowed)."""


def serve(settings: MetricsSettings, metrics: Metrics, health: Health) -> MetricsServer | None:
    """Start serving when a port is configured; ``None`` otherwise."""
    if settings.port is None:
        return None
    try:
        server = MetricsServer(metrics, health, settings.host, settings.port).start()
    except OSError as error:
        raise MetricsPortError(
            f"cannot serve metrics on {settings.host}:{settings.port} ({error.strerror}): "
            "choose another VIGIL_METRICS_PORT"
        ) from None
    log.info("metrics and health on http://%s:%d/metrics", settings.host, server.port)
    return server


def _handler(metrics: Metrics, health: Health) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._reply(200, generate_latest(metrics.registry), CONTENT_TYPE_LATEST)
            elif path in ("/healthz", "/readyz"):
                ok, why = health.alive() if path == "/healthz" else health.ready()
                self._reply(200 if ok else 503, f"{why}\n".encode(), "text/plain; charset=utf-8")
            else:
                self._reply(404, b"not found: /metrics, /healthz, /readyz\n", "text/plain; charset=utf-8")

        def _reply(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
            """Scrapes come every few seconds: not worth a log line each."""

    return Handler
