"""Build the pipeline, the store and the notifiers from settings (composition root)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Protocol

from alerting.gate import AlertGate
from identity.keyring import load_keyring
from policies.bundle import PACK_DIR, load_bundle
from schemas.records import AlertRow
from sinks.clickhouse import ClickHouseStore, connect, migrate
from sinks.console import ConsoleNotifier
from sinks.query_server import QueryServer
from sinks.slack import SlackNotifier
from vigil.pipeline import Pipeline
from vigil.settings import Settings

log = logging.getLogger(__name__)


class Notifier(Protocol):
    def notify(self, alert: AlertRow) -> None: ...


def build_pipeline(settings: Settings) -> Pipeline:
    return Pipeline(
        keyring=load_keyring(settings.keys_path),
        bundle=load_bundle(settings.policies_dir or PACK_DIR),
        gate=AlertGate(
            min_severity=settings.alert_min_severity,
            repeat_interval=settings.alert_repeat_seconds,
        ),
        max_bytes=settings.max_event_bytes,
        max_clock_skew=timedelta(days=settings.max_clock_skew_days),
    )


@dataclass
class OpenStore:
    """The store plus, when embedded, the read-only query server beside it."""

    store: ClickHouseStore
    query_server: QueryServer | None = None

    def close(self) -> None:
        if self.query_server is not None:
            self.query_server.stop()
        self.store.close()


def open_store(settings: Settings, serve_queries: bool = True) -> OpenStore:
    client = connect(settings.store_url)
    migrate(client)
    server = None
    if settings.embedded and serve_queries and settings.store_url != "chdb://memory":
        store_dir = Path(settings.store_url.removeprefix("chdb://"))
        server = QueryServer(connect(settings.store_url, already_owned=True), store_dir).start()
    return OpenStore(ClickHouseStore(client), server)


@dataclass
class Notifiers:
    """Fan an alert out to every configured channel; one failing never stops the rest."""

    channels: list[Notifier] = field(default_factory=list)
    slack: SlackNotifier | None = None

    def notify(self, alert: AlertRow) -> None:
        for channel in self.channels:
            try:
                channel.notify(alert)
            except Exception:
                log.exception("notifier %s failed", type(channel).__name__)

    def close(self) -> None:
        if self.slack is not None:
            self.slack.close()


def build_notifiers(settings: Settings, console: bool = True) -> Notifiers:
    notifiers = Notifiers()
    if console:
        notifiers.channels.append(ConsoleNotifier())
    if settings.slack.enabled:
        notifiers.slack = SlackNotifier(settings.slack)
        notifiers.channels.append(notifiers.slack)
    return notifiers
