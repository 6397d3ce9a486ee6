"""Build the pipeline, the store and the notifiers from settings (composition root)."""

from __future__ import annotations

import gc
import logging
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

from alerting import AlertGate, AlertingStore, AlertManager, ConfigError, ConfigSource, ManagerOptions
from alerting.config import builtin_config
from alerting.receivers import ReceiverContext
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
from sinks.clickhouse import ClickHouseStore, connect, migrate, private_directory
from sinks.query_server import QueryServer, QueryServerError
from vigil.pipeline import Pipeline
from vigil.settings import Settings

log = logging.getLogger(__name__)


class Notifier(Protocol):
    def notify(self, alert: AlertRow) -> None: ...


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
        gate=_alert_gate(settings),
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
        store_dir = Path(settings.store_url.removeprefix("chdb://"))
        query = settings.query
        try:
            server = QueryServer(
                store_dir,
                host=query.host,
                port=query.port,
                password=query.password.get_secret_value() if query.password else None,
            ).start()
        except QueryServerError:
            client.close()
            raise
    return OpenStore(audited_store(client, settings, signer), server)


def alerting_source(settings: Settings, console: bool = True) -> ConfigSource:
    """The routing configuration: ``VIGIL_ALERTING_CONFIG``, else the built-in route."""
    fallback = builtin_config(
        console=console, slack=settings.slack.enabled, group_interval=settings.alert_repeat_seconds or 300.0
    )
    try:
        return ConfigSource(settings.alerting.config, fallback)
    except ConfigError as error:
        raise SystemExit(f"vigil: {error}") from None


def _alert_gate(settings: Settings) -> AlertGate:
    config = alerting_source(settings).current
    return AlertGate(
        min_severity=config.global_.min_severity or settings.alert_min_severity,
        resolve_timeout=config.global_.resolve_timeout,
    )


@dataclass
class Notifiers:
    """The alert manager behind the drivers' ``notify``: routing and delivery off the stream."""

    manager: AlertManager
    client: Any = None

    def notify(self, alert: AlertRow) -> None:
        self.manager.notify(alert)

    def close(self) -> None:
        try:
            self.manager.close()
        finally:
            if self.client is not None:
                self.client.close()


def build_notifiers(settings: Settings, console: bool = True) -> Notifiers:
    """Call after ``open_store``: the manager reads and writes its tables on its own client."""
    slack = settings.slack
    context = ReceiverContext(
        slack_bot_token=slack.bot_token.get_secret_value() if slack.bot_token else None,
        slack_webhook_url=slack.webhook_url.get_secret_value() if slack.webhook_url else None,
        slack_channel=slack.channel,
        slack_base_url=slack.base_url,
        kafka_brokers=settings.kafka_brokers,
        topic_prefix=settings.kafka.topic_prefix,
    )
    options = ManagerOptions(
        state_dir=settings.alerting.state_dir or settings.data_dir / "alerting",
        queue_size=settings.alerting.queue_size,
        max_pending=settings.alerting.max_pending,
        refresh_interval=settings.alerting.refresh_seconds,
        close_timeout=settings.alerting.close_timeout,
    )
    client = connect(settings.store_url, already_owned=True)
    try:
        manager = AlertManager(
            alerting_source(settings, console), context, AlertingStore.over_client(client), options
        )
    except ConfigError as error:
        client.close()
        raise SystemExit(f"vigil: {error}") from None
    return Notifiers(manager, client)
