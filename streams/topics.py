"""Topic names, and creating them when a worker starts against a fresh cluster."""

from __future__ import annotations

import logging

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic

from vigil.kafka_clients import librdkafka_config
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
    admin = AdminClient(librdkafka_config(settings))
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


def max_message_bytes(settings: Settings, topic: str) -> int:
    """The largest message ``topic`` accepts (its ``max.message.bytes``)."""
    admin = AdminClient(librdkafka_config(settings))
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    entries = admin.describe_configs([resource], request_timeout=ADMIN_TIMEOUT)[resource].result()
    return int(entries["max.message.bytes"].value)


class TopicTimeError(RuntimeError):
    """A source topic keeps producer-set timestamps and cannot be changed: freshness would be forgeable."""


def ensure_broker_time(settings: Settings) -> list[str]:
    """Make every source topic stamp messages with the broker's clock; return those changed.

    Freshness and replay checks compare an event's ``ts`` with the message time. On a
    topic with ``CreateTime`` (the default for a topic a producer auto-created) the
    producer sets that time too, so a captured event re-sent with a matching old
    timestamp would look fresh. A topic left that way is switched to
    ``LogAppendTime`` (``VIGIL_KAFKA_FIX_TIMESTAMP_TYPE``, the default); where that is
    not allowed, or the setting is off, the worker refuses to start.
    """
    admin = AdminClient(librdkafka_config(settings))
    names = [settings.topic(t) for t in SOURCE_TOPICS]
    resources = [ConfigResource(ConfigResource.Type.TOPIC, name) for name in names]
    wrong = []
    for resource, future in admin.describe_configs(resources, request_timeout=ADMIN_TIMEOUT).items():
        entry = future.result().get("message.timestamp.type")
        if entry is None or entry.value != "LogAppendTime":
            wrong.append(resource.name)
    if not wrong:
        return []
    if not settings.kafka.fix_timestamp_type:
        raise TopicTimeError(
            f"topics {', '.join(sorted(wrong))} keep producer-set timestamps (CreateTime): set "
            "message.timestamp.type=LogAppendTime on them, or let the worker do it "
            "(VIGIL_KAFKA_FIX_TIMESTAMP_TYPE=true)"
        )
    changes = [
        ConfigResource(
            ConfigResource.Type.TOPIC,
            name,
            incremental_configs=[
                ConfigEntry(
                    "message.timestamp.type", "LogAppendTime", incremental_operation=AlterConfigOpType.SET
                )
            ],
        )
        for name in wrong
    ]
    for resource, future in admin.incremental_alter_configs(changes, request_timeout=ADMIN_TIMEOUT).items():
        try:
            future.result()
        except KafkaException as error:
            raise TopicTimeError(
                f"topic {resource.name} keeps producer-set timestamps and cannot be changed ({error}); "
                "set message.timestamp.type=LogAppendTime on it"
            ) from None
    log.warning(
        "switched %s to LogAppendTime: message times now come from the broker", ", ".join(sorted(wrong))
    )
    return sorted(wrong)
