"""The alert manager: from stored alert rows to delivered notifications, off the stream.

The stream's only contact is :meth:`AlertManager.notify`, which puts the row on a
bounded queue and returns; when the queue is full the row is appended to a spill
file on disk and read back later, so the stream never waits and nothing is lost.
A dispatcher thread does the rest: it feeds the :class:`~alerting.dispatcher.Dispatcher`,
re-reads silences, acknowledgements and the routing file every
``refresh_interval``, applies requests the CLI left for it, hands notifications
to one :class:`~alerting.delivery.DeliveryWorker` per receiver integration, and
writes what happened to ClickHouse (``alert_states``, ``notifications``,
``silences``, ``alert_acks``) in batches.

``threaded=False`` runs the same code without threads: tests call
:meth:`run_once` after moving an injected clock and see exactly what a live
manager would have done, without waiting.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import orjson
from pydantic import BaseModel

from alerting.config import AlertingConfig, ConfigError, ConfigSource
from alerting.delivery import DeliveryWorker, Metrics, Outbox, Receiver
from alerting.dispatcher import Ack, Dispatcher
from alerting.matchers import parse_matchers
from alerting.notifications import Notification
from alerting.receivers import ReceiverContext, build_receiver, integrations
from alerting.records import AckRow, NotificationRow, SilenceRow
from alerting.requests import take_requests
from alerting.silences import Silence
from alerting.store import AlertingStore
from schemas.records import AlertRow

log = logging.getLogger(__name__)

ReceiverFactory = Callable[[str, str, BaseModel, ReceiverContext], Receiver]
SPILL_FILE = "intake-overflow.jsonl"
MAX_BUFFERED_ROWS = 200_000


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class ManagerOptions:
    state_dir: Path | None = None
    """Outbox journals, the intake spill file and CLI requests; None keeps all in memory."""
    queue_size: int = 10_000
    refresh_interval: float = 5.0
    max_pending: int = 10_000
    backoff_initial: float = 1.0
    backoff_max: float = 60.0
    close_timeout: float = 10.0
    ack_lookback: timedelta = timedelta(days=7)


class AlertManager:
    def __init__(
        self,
        source: ConfigSource,
        context: ReceiverContext,
        store: AlertingStore | None = None,
        options: ManagerOptions | None = None,
        *,
        threaded: bool = True,
        receiver_factory: ReceiverFactory = build_receiver,
    ) -> None:
        self.source = source
        self.context = context
        self.store = store
        self.options = options or ManagerOptions()
        self.clock = context.clock
        self.wall_clock = context.wall_clock
        self.threaded = threaded
        self.receiver_factory = receiver_factory
        self.metrics = Metrics()
        self.dispatcher = Dispatcher(
            source.current,
            self.clock,
            self.wall_clock,
            details=store.finding_details if store is not None else None,
        )
        self.workers: dict[str, DeliveryWorker] = {}
        self._worker_configs: dict[str, str] = {}
        self._intake: queue.Queue[AlertRow] = queue.Queue(maxsize=self.options.queue_size)
        self._spill_lock = threading.Lock()
        self._acks_in: queue.Queue[Ack] = queue.Queue()
        self._rows_lock = threading.Lock()
        self._rows: dict[str, list[NamedTuple]] = {}
        self._silences: dict[str, Silence] = {}
        self._seen_acks: set[tuple[str, datetime]] = set()
        self._next_refresh = float("-inf")
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        if self.options.state_dir is not None:
            self.options.state_dir.mkdir(parents=True, exist_ok=True)
        self._build_workers(source.current)
        if threaded:
            self._thread = threading.Thread(target=self._run, name="vigil-alerting", daemon=True)
            self._thread.start()

    # --- the stream's side -----------------------------------------------------------

    def notify(self, alert: AlertRow) -> None:
        """Hand over a stored alert row; never blocks (overflow goes to a disk spill)."""
        self.metrics.inc("alerts_received")
        try:
            self._intake.put_nowait(alert)
        except queue.Full:
            self._spill(alert)
        self._wake.set()

    def _spill(self, alert: AlertRow) -> None:
        self.metrics.inc("alerts_spilled")
        path = self._spill_path()
        if path is None:
            self.metrics.inc("alerts_dropped")
            log.error("alert queue full and no state directory: alert %s not routed", alert.alert_id)
            return
        with self._spill_lock, path.open("ab") as handle:
            handle.write(orjson.dumps(alert._asdict()) + b"\n")

    def _spill_path(self) -> Path | None:
        return self.options.state_dir / SPILL_FILE if self.options.state_dir is not None else None

    def _unspill(self) -> list[AlertRow]:
        path = self._spill_path()
        if path is None or not path.exists():
            return []
        with self._spill_lock:
            claimed = path.with_suffix(".claimed")
            path.replace(claimed)
        rows = []
        for line in claimed.read_bytes().splitlines():
            try:
                raw = orjson.loads(line)
                raw["ts"], raw["fired_at"] = (datetime.fromisoformat(raw[k]) for k in ("ts", "fired_at"))
                rows.append(AlertRow(**raw))
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as error:
                log.error("unreadable spilled alert skipped: %s", error)
        claimed.unlink()
        return rows

    # --- the dispatcher's side ---------------------------------------------------------

    def run_once(self, force: bool = False) -> float | None:
        """One pass: ingest, refresh, tick, hand out, (deliver,) record. Returns next due time."""
        rows = self._drain()
        for row in rows:
            self.dispatcher.ingest(row)
        now = self.clock()
        if now >= self._next_refresh:
            self._refresh()
            self._next_refresh = now + self.options.refresh_interval
        self._take_acks()
        result = self.dispatcher.tick(force=force)
        self._buffer("alert_states", result.states)
        for notification in result.notifications:
            self._hand_out(notification)
        if not self.threaded:
            for worker in list(self.workers.values()):
                worker.step()
            self._take_acks()
        self._write()
        due = [self._next_refresh, *(d for d in [self.dispatcher.next_due()] if d is not None)]
        return min(due)

    def _drain(self) -> list[AlertRow]:
        rows: list[AlertRow] = []
        while len(rows) < self.options.queue_size:
            try:
                rows.append(self._intake.get_nowait())
            except queue.Empty:
                break
        if not rows:
            rows = self._unspill()
        return rows

    def _hand_out(self, notification: Notification) -> None:
        self.metrics.inc("notifications_created")
        labels = [label for label in self.workers if label.split("/", 1)[0] == notification.receiver]
        if not labels:
            log.debug("receiver %s has no integrations: %s", notification.receiver, notification.headline())
        for label in labels:
            self.workers[label].submit(notification)

    def _take_acks(self) -> None:
        while True:
            try:
                ack = self._acks_in.get_nowait()
            except queue.Empty:
                return
            self._apply_ack(ack, record=True)

    def _apply_ack(self, ack: Ack, record: bool) -> None:
        self._seen_acks.add((ack.target_id, ack.acked_at))
        covered = self.dispatcher.acknowledge(ack)
        log.info(
            "acknowledged %s by %s via %s (%d alert(s))", ack.target_id, ack.acked_by, ack.via, len(covered)
        )
        if record:
            self._buffer("alert_acks", [AckRow(ack.target_id, ack.acked_by, ack.via, "", ack.acked_at)])

    def _on_slack_acks(self, acks: list[Ack]) -> None:
        for ack in acks:
            self._acks_in.put(ack)
        self._wake.set()

    # --- refresh: configuration, silences, acknowledgements, CLI requests -------------

    def _refresh(self) -> None:
        try:
            changed = self.source.changed()
        except ConfigError as error:
            self.metrics.inc("config_reload_errors")
            log.error("alerting configuration not reloaded, keeping the previous one:\n%s", error)
            changed = None
        if changed is not None:
            self.reconfigure(changed)
        self._apply_requests()
        if self.store is None:
            self.dispatcher.set_silences(self._silences.values())
            return
        try:
            now = self.wall_clock()
            stored = self.store.silences(now)
            acks = self.store.acks(now - self.options.ack_lookback)
        except Exception as error:  # the store may be briefly unreachable; keep what we had
            self.metrics.inc("store_read_errors")
            log.warning("reading silences and acknowledgements failed: %s", error)
            self.dispatcher.set_silences(self._silences.values())
            return
        # The store is the truth (another worker or the CLI may have expired one);
        # silences this process added but has not written yet still count.
        with self._rows_lock:
            unwritten = [Silence.from_row(r) for r in self._rows.get("silences", [])]  # type: ignore[arg-type]
        current = {s.silence_id: s for s in [*stored, *unwritten]}
        self._silences = {k: s for k, s in current.items() if s.ends_at > now}
        self.dispatcher.set_silences(self._silences.values())
        for ack in acks:
            if (ack.target_id, ack.acked_at) not in self._seen_acks:
                self._apply_ack(ack, record=False)

    def _apply_requests(self) -> None:
        if self.options.state_dir is None:
            return
        for request in take_requests(self.options.state_dir):
            try:
                self.apply_request(request)
            except (KeyError, TypeError, ValueError) as error:
                log.error("alerting request %r refused: %s", request.get("kind"), error)

    def apply_request(self, request: dict[str, Any]) -> None:
        """Apply a CLI request (silence, expire, ack) as the store's owner."""
        kind = request["kind"]
        if kind == "silence":
            row = SilenceRow(
                silence_id=request["silence_id"],
                matchers=list(request["matchers"]),
                starts_at=datetime.fromisoformat(request["starts_at"]),
                ends_at=datetime.fromisoformat(request["ends_at"]),
                created_by=request["created_by"],
                reason=request["reason"],
                updated_at=datetime.fromisoformat(request["updated_at"]),
            )
            parse_matchers(row.matchers)
            self.add_silence(Silence.from_row(row))
        elif kind == "expire":
            self.expire_silence(request["silence_id"])
        elif kind == "ack":
            at = datetime.fromisoformat(request["acked_at"])
            ack = Ack(request["target_id"], request["acked_by"], "cli", at)
            self._apply_ack(ack, record=False)
            self._buffer(
                "alert_acks", [AckRow(ack.target_id, ack.acked_by, "cli", request.get("note", ""), at)]
            )
        else:
            raise ValueError(f"unknown request kind {kind!r}")

    def add_silence(self, silence: Silence) -> None:
        self._silences[silence.silence_id] = silence
        self.dispatcher.set_silences(self._silences.values())
        self._buffer("silences", [silence.row()])
        log.info("silence %s until %s: %s", silence.silence_id, silence.ends_at.isoformat(), silence.reason)

    def expire_silence(self, silence_id: str) -> bool:
        silence = self._silences.get(silence_id)
        if silence is None and self.store is not None:
            silence = self.store.silence(silence_id)
        if silence is None:
            log.warning("no silence %s to expire", silence_id)
            return False
        expired = silence.expired(self.wall_clock())
        self._silences[silence_id] = expired
        self.dispatcher.set_silences(self._silences.values())
        self._buffer("silences", [expired.row()])
        return True

    def acknowledge(self, target_id: str, acked_by: str, via: str = "api") -> list[str]:
        ack = Ack(target_id, acked_by, via, self.wall_clock())
        self._seen_acks.add((ack.target_id, ack.acked_at))
        self._buffer("alert_acks", [AckRow(target_id, acked_by, via, "", ack.acked_at)])
        return self.dispatcher.acknowledge(ack)

    # --- receivers ----------------------------------------------------------------------

    def reconfigure(self, config: AlertingConfig) -> None:
        """Switch to a new routing configuration (hot reload)."""
        self._build_workers(config)
        self.dispatcher.reconfigure(config)
        self.metrics.inc("config_reloads")
        log.info("alerting configuration reloaded: %d receiver(s)", len(config.receivers))

    def _build_workers(self, config: AlertingConfig) -> None:
        wanted = integrations(config)
        for label in list(self.workers):
            spec = wanted.get(label)
            if spec is None or spec[2].model_dump_json() != self._worker_configs[label]:
                worker = self.workers.pop(label)
                worker.close(timeout=0)
                if spec is None and len(worker.outbox):
                    log.warning(
                        "%s removed with %d notification(s) owed; kept in %s",
                        label,
                        len(worker.outbox),
                        worker.outbox.journal,
                    )
        for label, (name, kind, settings) in wanted.items():
            if label in self.workers:
                continue
            try:
                receiver = self.receiver_factory(name, kind, settings, self.context)
            except ValueError as error:
                raise ConfigError(str(error)) from None
            journal = None
            if self.options.state_dir is not None:
                journal = self.options.state_dir / "outbox" / f"{label.replace('/', '.')}.jsonl"
            worker = DeliveryWorker(
                receiver,
                Outbox(label, journal, self.options.max_pending),
                self.clock,
                self.wall_clock,
                self._status,
                self.metrics,
                self._on_slack_acks,
                backoff_initial=self.options.backoff_initial,
                backoff_max=self.options.backoff_max,
                sleep=self.context.sleep,
            )
            self.workers[label] = worker
            self._worker_configs[label] = settings.model_dump_json()
            if self.threaded:
                worker.start()

    def _status(self, row: NotificationRow) -> None:
        self._buffer("notifications", [row])

    def pending(self) -> dict[str, int]:
        """Notifications owed, per receiver integration (the backlog gauge)."""
        return {label: len(worker.outbox) for label, worker in self.workers.items()}

    # --- rows to ClickHouse -----------------------------------------------------------

    def _buffer(self, table: str, rows: list[Any]) -> None:
        if not rows or self.store is None:
            return
        with self._rows_lock:
            buffered = self._rows.setdefault(table, [])
            buffered.extend(rows)
            if len(buffered) > MAX_BUFFERED_ROWS:
                dropped = len(buffered) - MAX_BUFFERED_ROWS
                del buffered[:dropped]
                self.metrics.inc("store_rows_dropped", dropped)
                log.error("alerting store unreachable: %d old %s row(s) dropped from memory", dropped, table)

    def _write(self) -> None:
        if self.store is None:
            return
        with self._rows_lock:
            rows, self._rows = self._rows, {}
        if not rows:
            return
        try:
            self.store.write(rows)
        except Exception as error:  # keep them for the next pass; the stream is unaffected
            self.metrics.inc("store_write_errors")
            log.warning("writing alerting rows failed, will retry: %s", error)
            with self._rows_lock:
                for table, pending in rows.items():
                    self._rows[table] = pending + self._rows.get(table, [])

    # --- lifecycle ------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping:
            try:
                due = self.run_once()
            except Exception:  # keep routing whatever one pass tripped over
                log.exception("alert manager pass failed")
                due = self.clock() + 1.0
            wait = max(0.05, min(1.0, due - self.clock())) if due is not None else 1.0
            self._wake.wait(wait)
            self._wake.clear()

    def close(self, timeout: float | None = None) -> None:
        """Flush every group now, deliver for up to ``timeout``, record, stop.

        Whatever a receiver could not take in time stays in its outbox journal and
        is delivered by the next process that uses this state directory.
        """
        timeout = self.options.close_timeout if timeout is None else timeout
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.run_once(force=True)
        deadline = time.monotonic() + timeout
        for worker in self.workers.values():
            worker.close(max(0.0, deadline - time.monotonic()))
        self._take_acks()
        self._write()
        owed = {k: v for k, v in self.pending().items() if v}
        if owed:
            log.warning("alert manager stopped with notifications owed: %s", owed)
        log.info("alert manager stopped: %s", self.metrics.snapshot())
