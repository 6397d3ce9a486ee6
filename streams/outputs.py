"""What a worker's batch sends to Kafka besides its rows: dead letters, alerts, audit checkpoints.

``publish`` returns only when the broker has confirmed all of them, which is what
lets ``BatchCheckpoint`` commit the batch's offsets afterwards. Alerts may leave
earlier (``send_alerts``), as soon as the batch's findings and alerts are stored.
"""

from __future__ import annotations

import base64
import hashlib
import logging

import orjson

from audit.kafka_export import publish_checkpoints
from schemas.records import RejectedRow, header_bytes
from sinks.clickhouse import ClickHouseStore
from sinks.kafka import Headers, KafkaProducer
from streams.topics import ALERTS_TOPIC, AUDIT_TOPIC, DEADLETTER_TOPIC
from vigil.pipeline import BatchResult
from vigil.settings import Settings

log = logging.getLogger(__name__)

RECORD_OVERHEAD = 1024
"""Bytes kept free in a dead letter for the record batch framing, key and header names."""


class KafkaOutputs:
    def __init__(
        self, settings: Settings, producer: KafkaProducer, store: ClickHouseStore, deadletter_limit: int
    ) -> None:
        self.producer = producer
        self.store = store
        self.deadletter_limit = deadletter_limit
        """The dead-letter topic's ``max.message.bytes``, read when the worker starts."""
        self.alerts_topic = settings.topic(ALERTS_TOPIC)
        self.audit_topic = settings.topic(AUDIT_TOPIC)
        self.deadletter_topic = settings.topic(DEADLETTER_TOPIC)

    def send_alerts(self, result: BatchResult) -> None:
        for alert in result.alerts:
            self.producer.send(
                self.alerts_topic, orjson.dumps(alert._asdict()), key=alert.fingerprint.encode()
            )

    def publish(self, result: BatchResult, alerts_sent: bool = False) -> None:
        for row in result.rejected:
            self.send_dead_letter(row)
        if not alerts_sent:
            self.send_alerts(result)
        publish_checkpoints(self.producer, self.audit_topic, self.store)  # confirms all of the above

    def send_dead_letter(self, row: RejectedRow) -> None:
        """The rejected message as it arrived (its own headers first), with why and where
        in ``vigil.*`` headers.

        A message too large for the dead-letter topic (created larger than the broker's
        default, but an existing topic may be smaller) goes out cut to fit, with a
        ``vigil.truncated`` header giving its full size and ``vigil.sha256`` the digest
        of the whole; the ``rejected`` table holds it whole. Refusing it instead would
        stop the worker on one message forever.
        """
        value = base64.b64decode(row.raw_base64)
        key = row.key.encode() or None
        headers = [(name, header_bytes(text)) for name, text in row.headers] + deadletter_headers(row)
        if len(value) > self._room(key, headers):
            headers.append(("vigil.truncated", str(len(value)).encode()))
            headers.append(("vigil.sha256", hashlib.sha256(value).hexdigest().encode()))
            room = self._room(key, headers)
            log.warning(
                "dead letter %s is %d bytes, more than %s accepts: sent cut to %d bytes",
                row.rejected_id,
                len(value),
                self.deadletter_topic,
                room,
            )
            value = value[:room]
        self.producer.send(self.deadletter_topic, value, key=key, headers=headers)

    def _room(self, key: bytes | None, headers: Headers) -> int:
        """Bytes left for the value in a dead letter with this key and these headers."""
        taken = RECORD_OVERHEAD + len(key or b"") + sum(len(k) + len(v) for k, v in headers)
        return max(self.deadletter_limit - taken, 0)


def deadletter_headers(row: RejectedRow) -> Headers:
    return [
        ("vigil.rejected_id", row.rejected_id.encode()),
        ("vigil.code", row.code.encode()),
        ("vigil.reason", row.reason.encode()),
        ("vigil.topic", row.topic.encode()),
        ("vigil.partition", str(row.partition).encode()),
        ("vigil.offset", str(row.offset).encode()),
    ]
