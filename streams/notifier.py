"""``vigil notifier``: one alert manager for every worker, fed from ``ai.alerts`` by faust-streaming.

Workers publish their alert rows to ``ai.alerts`` and do nothing else with them.
This app consumes the topic and hands each batch, with the offsets it came from, to
the :class:`~alerting.manager.AlertManager`, which applies and saves it in one
transaction of its state database before faust acknowledges the batch. faust
commits acknowledged offsets on its own schedule, always at or behind the saved
positions, so after a crash the records in between are read again and recognised
as applied (nothing twice, nothing lost).

faust acknowledges an event even when the agent's body raises, so every error is
handled inside the loop: a row that is not an alert row is logged with its offset
and skipped; a batch that cannot be saved (a full disk) is retried until it is, and
holds the partition meanwhile.

One active, one standby: the active notifier holds an exclusive lock on its state
directory. A second one started on the same directory (same host, or a shared
volume with POSIX locks) waits for the lock without joining the consumer group;
when the active one dies, even by ``kill -9``, the kernel releases the lock, the
standby restores the state and joins the group, and gets the partitions once the
dead member's session has timed out (``VIGIL_NOTIFIER_SESSION_TIMEOUT``). Two
notifiers never deliver at the same time, so a takeover sends nothing twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from alerting.manager import AlertManager, Position
from alerting.state import StateLock
from schemas.records import AlertRow
from streams.topics import ALERTS_TOPIC
from vigil.kafka_clients import faust_credentials
from vigil.metrics import Health, Metrics, serve
from vigil.settings import Settings

log = logging.getLogger(__name__)

MAX_RETRY_SECONDS = 30.0


class AlertDecodeError(ValueError):
    """A record of ``ai.alerts`` that is not an alert row."""


def decode_alert(value: bytes | None) -> AlertRow:
    """An alert row as workers publish it (``streams.outputs``): a JSON object of its fields.

    Fields added to the row after the first release may be missing (a worker not yet
    upgraded) and read as their defaults."""
    try:
        raw = orjson.loads(value or b"")
    except orjson.JSONDecodeError as error:
        raise AlertDecodeError(f"not JSON: {error}") from None
    if not isinstance(raw, dict):
        raise AlertDecodeError("not a JSON object")
    missing = [name for name in AlertRow._fields if name not in raw and name not in AlertRow._field_defaults]
    if missing:
        raise AlertDecodeError(f"missing field(s): {', '.join(missing)}")
    try:
        times = {name: _utc(raw[name]) for name in ("ts", "fired_at")}
        occurrences = raw["occurrences"]
        if not isinstance(occurrences, int) or isinstance(occurrences, bool) or occurrences < 1:
            raise ValueError(f"occurrences must be a positive integer, not {occurrences!r}")
        texts = {
            name: raw.get(name, AlertRow._field_defaults.get(name))
            for name in AlertRow._fields
            if name not in (*times, "occurrences")
        }
        wrong = [name for name, text in texts.items() if not isinstance(text, str)]
        if wrong:
            raise ValueError(f"field(s) {', '.join(wrong)} must be strings")
    except (TypeError, ValueError) as error:
        raise AlertDecodeError(str(error)) from None
    fields = {**texts, **times, "occurrences": occurrences}
    return AlertRow._make(fields[name] for name in AlertRow._fields)


def _utc(value: object) -> datetime:
    if not isinstance(value, str):
        raise ValueError(f"a time must be an ISO 8601 string, not {value!r}")
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError(f"time {value!r} has no UTC offset")
    return moment


async def apply_batch(manager: AlertManager, events: Sequence[Any], health: Health | None = None) -> None:
    """Decode a batch of ``ai.alerts`` events and apply it; returns only once it is saved.

    ``health`` counts the notifier stalled while one batch keeps failing to save for
    longer than its limit; waiting for alerts is not a stall.
    """
    if health is not None:
        health.beat()
    try:
        await _apply(manager, events)
    finally:
        if health is not None:
            health.idle()


async def _apply(manager: AlertManager, events: Sequence[Any]) -> None:
    rows: list[AlertRow] = []
    positions: list[Position] = []
    for event in events:
        message = event.message
        try:
            rows.append(decode_alert(event.value))
        except AlertDecodeError as error:
            log.error(
                "%s[%d]@%d is not an alert row, skipped: %s",
                message.topic,
                message.partition,
                message.offset,
                error,
            )
            continue
        positions.append((message.topic, message.partition, message.offset))
    delay = 0.5
    while True:
        try:
            await asyncio.to_thread(manager.ingest, rows, positions)
            return
        except Exception:  # faust would skip the batch if this escaped: retry until it is saved
            log.exception("saving %d alert row(s) failed, retrying in %.1fs", len(rows), delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_RETRY_SECONDS)


def build_app(settings: Settings, manager: AlertManager, health: Health | None = None) -> Any:
    """The faust app: one agent on ``ai.alerts``, batches of up to ``batch_size`` rows."""
    import faust

    notifier = settings.notifier
    brokers = [f"kafka://{broker.strip()}" for broker in settings.kafka_brokers.split(",") if broker.strip()]
    app = faust.App(
        f"{settings.kafka.topic_prefix}{notifier.group_id}",
        broker=brokers,
        datadir=str(notifier_dir(settings) / "faust"),
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=notifier.session_timeout,
        broker_heartbeat_interval=max(notifier.session_timeout / 10, 0.5),
        broker_commit_interval=1.0,
        topic_disable_leader=True,
        broker_credentials=faust_credentials(settings),
    )
    topic = app.topic(
        settings.topic(ALERTS_TOPIC),
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )

    @app.agent(topic)
    async def alerts(stream: Any) -> None:
        async for events in stream.take_events(notifier.batch_size, within=notifier.batch_within):
            await apply_batch(manager, events, health)

    return app


def notifier_dir(settings: Settings) -> Path:
    return settings.alerting.state_dir or settings.data_dir / "alerting"


def run_notifier(settings: Settings, build_manager: Callable[[], AlertManager], loglevel: str) -> None:
    """Wait as standby until this process holds the state, then run until SIGTERM/SIGINT.

    ``/healthz`` and ``/metrics`` (``VIGIL_METRICS_PORT``) answer from the start, so a
    standby is seen alive while it waits.
    """
    metrics, health = Metrics(), Health(settings.metrics.stall_seconds)
    health.idle()  # alive while waiting: as the standby, or for alerts
    server = serve(settings.metrics, metrics, health)
    lock = StateLock(notifier_dir(settings))
    try:
        lock.acquire(
            on_wait=lambda: log.info(
                "standby: another notifier is active on %s; waiting to take over", lock.path
            )
        )
        _run_active(settings, build_manager, loglevel, metrics, health)
    finally:
        lock.release()
        if server is not None:
            server.close()


def _run_active(
    settings: Settings,
    build_manager: Callable[[], AlertManager],
    loglevel: str,
    metrics: Metrics,
    health: Health,
) -> None:
    import faust

    manager = build_manager()  # after the lock: the state is the previous owner's last commit
    manager.metrics.on_delivery = metrics.notification
    metrics.queue_depth("notifications", lambda: sum(manager.pending().values()))
    log.info("active notifier on %s (group %s)", settings.kafka_brokers, settings.notifier.group_id)
    worker = faust.Worker(
        build_app(settings, manager, health),
        loglevel=loglevel,
        quiet=True,
        override_logging=False,
        redirect_stdouts=False,
    )
    try:
        worker.execute_from_commandline()
    finally:
        manager.close()
