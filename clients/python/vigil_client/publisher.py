"""Publish signed events to Kafka and learn, per event, whether the broker has it.

A send is asynchronous; the broker's answer arrives as a delivery report. ``flush()``
waits for the outstanding ones and returns them all: delivered events with their
partition and offset, failed ones with the reason, and any still unanswered when the
timeout ran out. Resend only failed events: an event the broker acknowledged, sent a
second time, is a replay to Vigil. The producer is idempotent (``acks=all``), so its
own retries never write an event twice, and uses the Java client's partitioner so that
the same key lands on the same partition whichever client sent it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from vigil_client.canonical import encode
from vigil_client.routing import PARTITIONER, message_key, topic_for
from vigil_client.signing import Signer, sign

MAX_EVENT_BYTES = 65536
"""Vigil's default ``VIGIL_MAX_EVENT_BYTES``: a larger message is rejected as ``oversize``."""

DEFAULT_CONFIG: dict[str, Any] = {
    "enable.idempotence": True,
    "acks": "all",
    "partitioner": PARTITIONER,
    "linger.ms": 5,
}


class KafkaProducer(Protocol):
    """The part of ``confluent_kafka.Producer`` the publisher uses (injectable for tests)."""

    def produce(
        self, topic: str, value: bytes, key: bytes, *, on_delivery: Callable[[Any, Any], None]
    ) -> None: ...

    def poll(self, timeout: float) -> int: ...

    def flush(self, timeout: float) -> int: ...


@dataclass(frozen=True, slots=True)
class Delivered:
    event_id: str
    topic: str
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class Failed:
    event_id: str
    reason: str


@dataclass
class DeliveryReport:
    """What the broker answered since the last ``flush()``."""

    delivered: list[Delivered] = field(default_factory=list)
    failed: list[Failed] = field(default_factory=list)
    unanswered: list[str] = field(default_factory=list)
    """Event ids without an answer when the timeout ran out: they may still arrive."""

    @property
    def ok(self) -> bool:
        return not self.failed and not self.unanswered


class Publisher:
    """Signs each event (when given a signer), routes it and sends it.

    ``brokers`` and ``config`` go to ``confluent_kafka.Producer``; ``config`` may add
    security settings or override the defaults above. ``topic_prefix`` is the
    deployment's ``VIGIL_KAFKA_TOPIC_PREFIX``.
    """

    def __init__(
        self,
        brokers: str,
        signer: Signer | None = None,
        *,
        topic_prefix: str = "",
        max_event_bytes: int = MAX_EVENT_BYTES,
        config: Mapping[str, Any] | None = None,
        producer: KafkaProducer | None = None,
    ) -> None:
        self.signer = signer
        self.topic_prefix = topic_prefix
        self.max_event_bytes = max_event_bytes
        self._producer = producer if producer is not None else _confluent_producer(brokers, config or {})
        self._pending: dict[int, str] = {}
        self._report = DeliveryReport()
        self._next = 0

    def send(self, event: Mapping[str, Any]) -> bytes:
        """Sign and queue one event; returns the message bytes. Raises ``ValueError`` for an
        event that cannot be sent (unknown type, no key, too large, not canonicalizable),
        before anything is queued."""
        document = sign(event, self.signer) if self.signer is not None else dict(event)
        value = encode(document)
        if len(value) > self.max_event_bytes:
            event_id = document.get("event_id")
            raise ValueError(f"event {event_id!r} is {len(value)} bytes, limit is {self.max_event_bytes}")
        topic, key = topic_for(document, self.topic_prefix), message_key(document)
        token = self._next
        self._next += 1
        self._pending[token] = str(document.get("event_id", ""))
        self._produce(topic, value, key, token)
        return value

    def flush(self, timeout: float = 30.0) -> DeliveryReport:
        """Wait up to ``timeout`` seconds for every outstanding delivery report."""
        self._producer.flush(timeout)
        report, self._report = self._report, DeliveryReport()
        report.unanswered.extend(self._pending.values())
        self._pending.clear()
        return report

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.flush()

    def _produce(self, topic: str, value: bytes, key: bytes, token: int) -> None:
        def on_delivery(error: Any, message: Any) -> None:
            event_id = self._pending.pop(token, "")
            if error is not None:
                self._report.failed.append(Failed(event_id, str(error)))
            else:
                self._report.delivered.append(
                    Delivered(event_id, message.topic(), message.partition(), message.offset())
                )

        while True:
            try:
                self._producer.produce(topic, value, key=key, on_delivery=on_delivery)
                break
            except BufferError:  # the local queue is full: serve delivery reports, then retry
                self._producer.poll(0.5)
            except Exception:  # refused outright: the caller gets the error, no report will come
                self._pending.pop(token, None)
                raise
        self._producer.poll(0)


def _confluent_producer(brokers: str, config: Mapping[str, Any]) -> KafkaProducer:
    try:
        from confluent_kafka import Producer
    except ImportError as error:
        raise ImportError("publishing needs `pip install 'vigil-client[kafka]'`") from error
    producer: KafkaProducer = Producer({**DEFAULT_CONFIG, "bootstrap.servers": brokers, **config})
    return producer
