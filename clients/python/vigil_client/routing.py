"""Where an event goes: its topic and its message key (docs/events.md, "Transport")."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

TOPIC_BY_TYPE = {
    "inference": "ai.inference",
    "feedback": "ai.inference",
    "training": "ai.training",
    "access": "ai.access",
}
PARTITIONER = "murmur2_random"
"""librdkafka's name for the Java client's partitioner: the same key lands on the same
partition whichever client sent it, so one model's events stay in order on one partition."""


def topic_for(document: Mapping[str, Any], prefix: str = "") -> str:
    """The topic of the event's type, behind ``VIGIL_KAFKA_TOPIC_PREFIX`` if the deployment sets one."""
    kind = document.get("type")
    if kind not in TOPIC_BY_TYPE:
        raise ValueError(f"unknown event type {kind!r}: expected one of {', '.join(TOPIC_BY_TYPE)}")
    return prefix + TOPIC_BY_TYPE[kind]


def message_key(document: Mapping[str, Any]) -> bytes:
    """``principal.id`` for access events, ``model_id`` for the others, as UTF-8."""
    if document.get("type") == "access":
        principal = document.get("principal")
        key = principal.get("id") if isinstance(principal, Mapping) else None
        name = "principal.id"
    else:
        key, name = document.get("model_id"), "model_id"
    if not isinstance(key, str) or not key:
        raise ValueError(f"the message key {name} is missing or not a string")
    return key.encode("utf-8")
