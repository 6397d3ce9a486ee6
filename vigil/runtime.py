"""Build the pipeline, the store and the alert manager from settings (composition root)."""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

from alerting import AlertGate, AlertingStore, AlertManager, ConfigSource, ManagerOptions
from alerting.config import builtin_config
from alerting.receivers import ReceiverContext
from alerting.state import StateLock, StateLockedError
from audit.store import audited_store, load_signer
from detectors.config import load_config
from detectors.stage import DetectStage
from identity.freshness import ReplayGuard
from identity.keyring import load_keyring
from identity.tokens import TokenVerifier
from identity.verify import IdentityVerifier
from policies.bundle import PACK_DIR
from policies.runtime import PolicyRuntime
from schemas.records import AlertRow
from sinks.clickhouse import ClickHouseStore, StoreLockedError, connect, migrate, private_directory
from sinks.query_server import QueryServer, QueryServerError
from sinks.receivers import build_receiver
from vigil.pipeline import Pipeline
from vigil.settings import Settings

log = logging.getLogger(__name__)


def settle_memory() -> None:
    """Tune the garbage collector once start-up is done.

    Start-up leaves ~100k long-lived objects (river pulls in scipy), and the replay
    guard, ledger window and detector state grow from there; with default thresholds
    a full collection re-scans all of them after nearly every batch (a quarter of the
    CPU of ``vigil run``). Freezing what exists and collecting the young generation
    less often cut the pipeline's CPU per event by about 23% in bench/pipeline.py.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def build_identity(settings: Settings) -> IdentityVerifier:
    config = settings.identity
    tokens = None
    if config.jwks:
        tokens = TokenVerifier(
            config.jwks,
            issuer=config.jwt_issuer,
            audience=config.jwt_audience,
            algorithms=config.jwt_algorithms,
            leeway_seconds=config.jwt_leeway_seconds,
            roles_claim=config.jwt_roles_claim,
        )
    return IdentityVerifier(
        load_keyring(settings.keys_path),
        tokens=tokens,
        replay=ReplayGuard(
            window=timedelta(hours=config.replay_window_hours), max_bytes=config.replay_max_mib * 2**20
        ),
        max_skew=timedelta(seconds=config.max_skew_seconds),
    )


def build_policies(settings: Settings) -> PolicyRuntime:
    return PolicyRuntime(
        settings.policies.dir or PACK_DIR,
        maturities=settings.policies.maturity,
        inventory_path=settings.inventory_path,
        check_interval=settings.policies.reload_seconds,
    )


def build_pipeline(settings: Settings) -> Pipeline:
    return Pipeline(
        identity=build_identity(settings),
        policies=build_policies(settings),
        detect=DetectStage(load_config(settings.detectors.config)),
        gate=alert_gate(settings),
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
    if settings.embedded:
        private_directory(settings.data_dir)  # before the key and the store are written into it
    signer = load_signer(settings)  # first: a bad key file must fail before anything is opened
    client = connect(settings.store_url)
    migrate(client)
    server = None
    if settings.embedded and serve_queries and settings.store_url != "chdb://memory":
        try:
            server = query_server(settings)
        except QueryServerError:
            client.close()
            raise
    more = partial(connect, settings.store_url, already_owned=True)
    return OpenStore(audited_store(client, settings, signer, more), server)


def query_server(settings: Settings) -> QueryServer:
    """The read-only ClickHouse HTTP interface of the embedded store this process owns."""
    query = settings.query
    return QueryServer(
        Path(settings.store_url.removeprefix("chdb://")),
        host=query.host,
        port=query.port,
        password=query.password.get_secret_value() if query.password else None,
    ).start()


def alerting_source(settings: Settings, console: bool = True) -> ConfigSource:
    """The routing configuration: ``VIGIL_ALERTING_CONFIG``, else the built-in route.

    An invalid file raises ``ConfigError`` listing every problem; the CLI says it in one line.
    """
    fallback = builtin_config(
        console=console, slack=settings.slack.enabled, repeat_interval=settings.alert_repeat_seconds
    )
    return ConfigSource(settings.alerting.config, fallback)


def alert_gate(settings: Settings) -> AlertGate:
    """The gate from findings to alert rows, as the routing file and settings set it; every
    driver that records findings (the pipeline, the decision API's recorder) uses this one."""
    config = alerting_source(settings).current
    return AlertGate(
        min_severity=config.global_.min_severity or settings.alert_min_severity,
        resolve_timeout=config.global_.resolve_timeout,
    )


@dataclass
class Notifiers:
    """The alert manager of an embedded run, behind the drivers' ``notify``.

    ``vigil run`` and ``vigil demo`` apply their alert rows in-process with the same
    manager ``vigil notifier`` runs behind Kafka.
    """

    manager: AlertManager
    client: Any = None
    lock: StateLock | None = None

    def notify(self, alerts: Sequence[AlertRow]) -> None:
        self.manager.ingest(alerts)

    def close(self, flush_groups: bool = False) -> None:
        try:
            self.manager.close(flush_groups=flush_groups)
        finally:
            if self.client is not None:
                self.client.close()
            if self.lock is not None:
                self.lock.release()


def receiver_context(settings: Settings) -> ReceiverContext:
    """Slack and Kafka settings for the receivers; timers on epoch seconds, which survive restarts."""
    slack = settings.slack
    return ReceiverContext(
        slack_bot_token=slack.bot_token.get_secret_value() if slack.bot_token else None,
        slack_webhook_url=slack.webhook_url.get_secret_value() if slack.webhook_url else None,
        slack_channel=slack.channel,
        slack_base_url=slack.base_url,
        slack_timeout=slack.timeout,
        kafka_brokers=settings.kafka_brokers,
        topic_prefix=settings.kafka.topic_prefix,
        clock=time.time,
    )


def manager_options(settings: Settings) -> ManagerOptions:
    return ManagerOptions(
        state_dir=settings.alerting.state_dir or settings.data_dir / "alerting",
        max_pending=settings.alerting.max_pending,
        refresh_interval=settings.alerting.refresh_seconds,
        close_timeout=settings.alerting.close_timeout,
    )


def build_alert_manager(
    settings: Settings, store: AlertingStore | None, console: bool = True
) -> AlertManager:
    """The manager ``vigil notifier`` and embedded runs share; a bad routing file raises ``ConfigError``."""
    return AlertManager(
        alerting_source(settings, console),
        receiver_context(settings),
        store,
        manager_options(settings),
        receiver_factory=build_receiver,
    )


def build_notifiers(settings: Settings, console: bool = True) -> Notifiers:
    """Call after ``open_store``: the manager reads and writes its tables on its own client.

    The run owns the alerting state while it lasts: with a ``vigil notifier`` on the
    same state directory it would deliver the same groups twice, so it refuses.
    """
    lock = StateLock(manager_options(settings).state_dir or settings.data_dir / "alerting")
    try:
        lock.acquire()
    except StateLockedError as error:
        raise SystemExit(f"vigil: {error}; stop it or set VIGIL_ALERTING_STATE_DIR") from None
    client = connect(settings.store_url, already_owned=True)
    try:
        manager = build_alert_manager(settings, AlertingStore.over_client(client), console)
    except BaseException:
        client.close()
        lock.release()
        raise
    return Notifiers(manager, client, lock)


@dataclass
class NotifierStore:
    """The ClickHouse side of ``vigil notifier``: its client and, when embedded, the query server."""

    store: AlertingStore | None
    client: Any = None
    query_server: QueryServer | None = None

    def close(self) -> None:
        if self.query_server is not None:
            self.query_server.stop()
        if self.client is not None:
            self.client.close()


def open_notifier_store(settings: Settings) -> NotifierStore:
    """The alerting tables, or none when a worker owns the embedded store.

    With a ClickHouse server every worker and the notifier share one store. An
    embedded store admits one process: a notifier beside an embedded worker then
    keeps its alert states in its own state database only (or gets a chDB directory
    of its own through ``VIGIL_CLICKHOUSE_URL``, served to ``vigil alerts`` like a
    worker's).
    """
    try:
        client = connect(settings.store_url)
    except StoreLockedError:
        log.warning(
            "the embedded store is owned by another process: alert states and notifications are kept in "
            "the notifier's state only; give the notifier a store of its own to list them"
        )
        return NotifierStore(None)
    migrate(client)
    server = None
    if settings.embedded and settings.store_url != "chdb://memory":
        try:
            server = query_server(settings)
        except QueryServerError:
            client.close()
            raise
    return NotifierStore(AlertingStore.over_client(client), client, server)
