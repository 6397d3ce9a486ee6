"""Topic names, and creating them when a worker starts against a fresh cluster."""

from __future__ import annotations

import contextlib
import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

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


async def ensure_topics(settings: Settings) -> None:
    """Create Vigil's topics if missing; existing topics are left as they are."""
    names = {settings.topic(t): t for t in (*SOURCE_TOPICS, ALERTS_TOPIC, DEADLETTER_TOPIC, AUDIT_TOPIC)}
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_brokers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(
                name,
                num_partitions=settings.kafka.partitions,
                replication_factor=1,
                topic_configs=TOPIC_CONFIGS.get(base, {}),
            )
            for name, base in names.items()
            if name not in existing
        ]
        if wanted:
            with contextlib.suppress(TopicAlreadyExistsError):  # another worker was first
                await admin.create_topics(wanted)
            log.info("created topics %s", ", ".join(t.name for t in wanted))
    finally:
        await admin.close()
