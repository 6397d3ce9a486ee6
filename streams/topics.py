"""Topic names, and creating them when a worker starts against a fresh cluster."""

from __future__ import annotations

import logging

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from vigil.settings import Settings

log = logging.getLogger(__name__)

SOURCE_TOPICS = ("ai.inference", "ai.training", "ai.access")
ALERTS_TOPIC = "ai.alerts"
DEADLETTER_TOPIC = "ai.deadletter"
AUDIT_TOPIC = "ai.audit"
_BROKER_TIME = {"message.timestamp.type": "LogAppendTime"}
TOPIC_CONFIGS = {
    AUDIT_TOPIC: {"cleanup.policy": "compact"},
    **dict.fromkeys(SOURCE_TOPICS, _BROKER_TIME),
}
"""Per-topic settings at creation. The audit topic keeps the latest checkpoint per stream;
event topics stamp messages with the broker's clock, so freshness is judged against a
time the producer cannot choose."""
TOPIC_BY_TYPE = {
    "inference": "ai.inference",
    "feedback": "ai.inference",
    "training": "ai.training",
    "access": "ai.access",
}
ADMIN_TIMEOUT = 30.0


def topic_configs(settings: Settings) -> dict[str, dict[str, str]]:
    """Settings of each topic at creation, by unprefixed name.

    The dead-letter topic accepts messages larger than the broker's default 1 MiB: a
    message the broker accepted at its limit gains headers when it becomes a dead letter.
    """
    deadletter = {"max.message.bytes": str(settings.kafka.deadletter_max_bytes)}
    return {**TOPIC_CONFIGS, DEADLETTER_TOPIC: deadletter}


def ensure_topics(settings: Settings) -> None:
    """Create Vigil's topics if missing; existing topics are left as they are."""
    names = {settings.topic(t): t for t in (*SOURCE_TOPICS, ALERTS_TOPIC, DEADLETTER_TOPIC, AUDIT_TOPIC)}
    admin = AdminClient({"bootstrap.servers": settings.kafka_brokers})
    existing = set(admin.list_topics(timeout=ADMIN_TIMEOUT).topics)
    configs = topic_configs(settings)
    wanted = [
        NewTopic(
            name, num_partitions=settings.kafka.partitions, replication_factor=1, config=configs.get(base, {})
        )
        for name, base in names.items()
        if name not in existing
    ]
    if not wanted:
        return
    created = []
    for name, future in admin.create_topics(wanted, request_timeout=ADMIN_TIMEOUT).items():
        try:
            future.result()
            created.append(name)
        except KafkaException as error:
            if error.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:  # another worker was first
                raise
    if created:
        log.info("created topics %s", ", ".join(sorted(created)))


def max_message_bytes(brokers: str, topic: str) -> int:
    """The largest message ``topic`` accepts (its ``max.message.bytes``)."""
    admin = AdminClient({"bootstrap.servers": brokers})
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    entries = admin.describe_configs([resource], request_timeout=ADMIN_TIMEOUT)[resource].result()
    return int(entries["max.message.bytes"].value)
