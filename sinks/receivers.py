"""Receiver integrations built from configuration: Slack, webhook, Alertmanager, Kafka topic, console.

The generic webhook posts an Alertmanager-shaped JSON document (``status``,
``groupLabels``, ``commonLabels``, ``alerts`` with ``labels`` and ``annotations``),
so tools that take Alertmanager webhooks take Vigil's. The Kafka integration
publishes the same document, keyed by group id, for systems that consume routed,
deduplicated notifications (the ``ai.alerts`` topic carries every alert update
before routing). The Alertmanager integration posts each alert of a notification
to a Prometheus Alertmanager's ``/api/v2/alerts``, where it joins the alerts of
other systems under Alertmanager's own routing and silences.

:func:`build_receiver` is the :data:`alerting.receivers.ReceiverFactory` the
composition hands to the alert manager.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import urllib.error
import urllib.request
from datetime import timedelta
from typing import Any

import orjson
from pydantic import BaseModel

from alerting.config import AlertmanagerConfig, ConsoleConfig, KafkaConfig, SlackConfig, WebhookConfig
from alerting.delivery import DeliveryError, Receiver
from alerting.dispatcher import Ack
from alerting.notifications import Notification
from alerting.receivers import ReceiverContext
from sinks.console import ConsoleReceiver
from sinks.slack import SlackReceiver

log = logging.getLogger(__name__)


def alertmanager_document(notification: Notification) -> dict[str, Any]:
    alerts = notification.alerts
    common = dict(alerts[0].labels) if alerts else {}
    for alert in alerts[1:]:
        common = {k: v for k, v in common.items() if alert.labels.get(k) == v}
    return {
        "version": "vigil/1",
        "receiver": notification.receiver,
        "status": notification.status,
        "kind": notification.kind,
        "groupKey": notification.group_id,
        "notificationId": notification.notification_id,
        "groupLabels": notification.group_labels,
        "commonLabels": common,
        "title": notification.headline(),
        "folded": notification.folded(),
        "alerts": [
            {
                "alertId": a.alert_id,
                "fingerprint": a.fingerprint,
                "status": "resolved" if a.state == "resolved" else "firing",
                "state": a.state,
                "labels": a.labels,
                "annotations": {
                    "title": a.title,
                    "summary": a.summary,
                    "runbook_url": a.runbook_url,
                    "evidence_query": a.evidence_query,
                    "controls": ",".join(a.controls),
                },
                "startsAt": a.first_seen.isoformat(),
                "lastSeen": a.last_seen.isoformat(),
                "occurrences": a.occurrences,
                "newOccurrences": a.new_occurrences,
                "ackedBy": a.acked_by,
            }
            for a in alerts
        ],
    }


class WebhookReceiver:
    def __init__(self, name: str, config: WebhookConfig) -> None:
        self.name = name
        self.config = config

    def deliver(self, notification: Notification) -> None:
        headers = {k: v.get_secret_value() for k, v in self.config.headers.items()}
        post_json(
            "webhook",
            self.config.url.get_secret_value(),
            alertmanager_document(notification),
            self.config.timeout,
            headers,
        )

    def poll(self) -> list[Ack]:
        return []

    def close(self) -> None:
        """Nothing held open between deliveries."""


def post_json(
    what: str, url: str, document: Any, timeout: float, headers: dict[str, str] | None = None
) -> None:
    """POST ``document`` as JSON; a refusal or an unreachable endpoint is a ``DeliveryError``,
    retryable unless the endpoint answered a client error other than 429."""
    request = urllib.request.Request(
        url,
        data=orjson.dumps(document),
        headers={"Content-Type": "application/json", "User-Agent": "vigil-alerting", **(headers or {})},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
    except urllib.error.HTTPError as error:
        retryable = error.code == 429 or error.code >= 500
        detail = error.read()[:200].decode("utf-8", "replace").strip()
        said = f": {detail}" if detail else ""
        raise DeliveryError(f"{what} answered HTTP {error.code}{said}", retryable) from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise DeliveryError(f"{what} unreachable: {reason}", retryable=True) from None


def postable_alerts(notification: Notification) -> list[dict[str, Any]]:
    """The notification's alerts as Alertmanager's API v2 ``postableAlerts``.

    ``alertname`` is the rule, as Alertmanager expects every alert to have one. A
    firing alert is posted again with each notification of its group and ends, if
    nothing is posted meanwhile, when Vigil would resolve it (``resolve_timeout``
    after now); a resolved one ends now.
    """
    now = notification.created_at
    alerts = []
    for alert in notification.alerts:
        resolved = alert.state == "resolved"
        ends = now if resolved else now + timedelta(seconds=notification.resolve_timeout)
        alerts.append(
            {
                "labels": {"alertname": alert.labels.get("rule") or "default-deny", **alert.labels},
                "annotations": {
                    "summary": alert.title,
                    "description": alert.summary,
                    "runbook_url": alert.runbook_url,
                    "evidence_query": alert.evidence_query,
                    "controls": ",".join(alert.controls),
                    "vigil_alert_id": alert.alert_id,
                    "vigil_group_id": notification.group_id,
                    "vigil_state": alert.state,
                    "occurrences": str(alert.occurrences),
                },
                "startsAt": alert.first_seen.isoformat(),
                "endsAt": ends.isoformat(),
            }
        )
    return alerts


class AlertmanagerReceiver:
    def __init__(self, name: str, config: AlertmanagerConfig) -> None:
        self.name = name
        self.config = config
        self.endpoint = config.url.rstrip("/") + "/api/v2/alerts"

    def deliver(self, notification: Notification) -> None:
        post_json("Alertmanager", self.endpoint, postable_alerts(notification), self.config.timeout)

    def poll(self) -> list[Ack]:
        return []

    def close(self) -> None:
        """Nothing held open between deliveries."""


class KafkaReceiver:
    """Publishes on its own event loop, on the delivery worker's thread."""

    def __init__(self, name: str, topic: str, brokers: str) -> None:
        self.name = name
        self.topic = topic
        self.brokers = brokers
        self._loop: asyncio.AbstractEventLoop | None = None
        self._producer: Any = None

    def deliver(self, notification: Notification) -> None:
        try:
            loop, producer = self._started()
            loop.run_until_complete(
                producer.send_and_wait(
                    self.topic,
                    orjson.dumps(alertmanager_document(notification)),
                    key=notification.group_id.encode(),
                )
            )
        except Exception as error:  # broker down or unreachable: try again later
            self._reset()
            raise DeliveryError(f"kafka publish to {self.topic} failed: {error}", retryable=True) from None

    def _started(self) -> tuple[asyncio.AbstractEventLoop, Any]:
        if self._producer is None:
            self._loop = asyncio.new_event_loop()
            self._producer = self._loop.run_until_complete(self._open())
        assert self._loop is not None
        return self._loop, self._producer

    async def _open(self) -> Any:
        """aiokafka objects must be made inside a coroutine of the loop that runs them."""
        from aiokafka import AIOKafkaProducer

        await self._ensure_topic()
        producer = AIOKafkaProducer(bootstrap_servers=self.brokers, acks="all", request_timeout_ms=10_000)
        await producer.start()
        return producer

    async def _ensure_topic(self) -> None:
        """Create the topic (one partition: notifications stay in order) if it is missing."""
        from aiokafka.admin import AIOKafkaAdminClient, NewTopic
        from aiokafka.errors import TopicAlreadyExistsError

        admin = AIOKafkaAdminClient(bootstrap_servers=self.brokers)
        await admin.start()
        try:
            if self.topic not in set(await admin.list_topics()):
                with contextlib.suppress(TopicAlreadyExistsError):
                    await admin.create_topics([NewTopic(self.topic, num_partitions=1, replication_factor=1)])
                log.info("%s: created topic %s", self.name, self.topic)
        finally:
            await admin.close()

    def _reset(self) -> None:
        if self._loop is not None:
            if self._producer is not None:
                try:
                    self._loop.run_until_complete(self._producer.stop())
                except Exception as error:
                    log.debug("%s: stopping the producer failed: %s", self.name, error)
            self._loop.close()
        self._loop, self._producer = None, None

    def poll(self) -> list[Ack]:
        return []

    def close(self) -> None:
        self._reset()


def build_receiver(name: str, kind: str, config: BaseModel, context: ReceiverContext) -> Receiver:
    """One integration; raises ValueError when the configuration cannot work (e.g. no token)."""
    label = f"{name}/{kind}"
    if isinstance(config, SlackConfig):
        token = config.bot_token.get_secret_value() if config.bot_token else None
        hook = config.webhook_url.get_secret_value() if config.webhook_url else None
        if token is None and hook is None:
            token, hook = context.slack_bot_token, context.slack_webhook_url
        return SlackReceiver(
            label,
            channel=config.channel or context.slack_channel,
            bot_token=token,
            webhook_url=hook if token is None else None,
            base_url=config.base_url or context.slack_base_url,
            timeout=config.timeout if config.timeout is not None else context.slack_timeout,
            min_interval=config.min_interval,
            ack_poll_interval=config.ack_poll_interval,
            clock=context.clock,
            sleep=context.sleep,
            wall_clock=context.wall_clock,
            title=config.title,
            text=config.text,
            send_resolved=config.send_resolved,
        )
    if isinstance(config, WebhookConfig):
        return WebhookReceiver(label, config)
    if isinstance(config, AlertmanagerConfig):
        return AlertmanagerReceiver(label, config)
    if isinstance(config, KafkaConfig):
        return KafkaReceiver(label, context.topic_prefix + config.topic, context.kafka_brokers)
    if isinstance(config, ConsoleConfig):
        return ConsoleReceiver(label, context.console_stream)
    raise ValueError(f"receiver {name}: unknown integration {kind}")
