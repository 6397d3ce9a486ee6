"""What receiver integrations take from the process, and which integrations a routing file asks for.

The integrations themselves (Slack, webhook, Alertmanager, Kafka topic, console) do I/O
and live in ``sinks`` (:mod:`sinks.receivers`); the alert manager is handed a
:data:`ReceiverFactory` that builds them, so routing and grouping stay free of I/O.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TextIO

from pydantic import BaseModel

from alerting.config import AlertingConfig
from alerting.delivery import Receiver


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class ReceiverContext:
    """What integrations take from the process rather than from the routing file."""

    slack_bot_token: str | None = None
    slack_webhook_url: str | None = None
    slack_channel: str = "#vigil-alerts"
    slack_base_url: str = "https://slack.com/api/"
    slack_timeout: float = 10.0
    kafka_brokers: str = "127.0.0.1:9092"
    topic_prefix: str = ""
    console_stream: TextIO | None = None
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    wall_clock: Callable[[], datetime] = _utc_now


ReceiverFactory = Callable[[str, str, BaseModel, ReceiverContext], Receiver]
"""Builds one integration from its receiver name, kind (``slack``, ``webhook``...) and
configuration; raises ValueError when the configuration cannot work."""


def integrations(config: AlertingConfig) -> dict[str, tuple[str, str, BaseModel]]:
    """Every integration of every receiver by its label ``receiver/kind``."""
    return {
        f"{receiver.name}/{kind}": (receiver.name, kind, settings)
        for receiver in config.receivers
        for kind, settings in receiver.integrations().items()
    }
