"""A Kafka producer whose sends count only once the broker has confirmed them.

The worker publishes dead letters, alerts and audit checkpoints of a batch, and may
commit the batch's offsets only after all of them are on the broker. ``send`` queues
a message; ``confirm`` waits for every delivery report and raises ``DeliveryError``
if any message was refused or timed out, so the caller leaves the batch uncommitted.

Acknowledged by all in-sync replicas (``acks=all``) and idempotent, so a retried
send never lands twice. ``message.max.bytes`` is raised to ``max_message_bytes``: a
rejected message the broker accepted at its 1 MiB limit must still fit as a dead
letter once its headers are added (the dead-letter topic is created to accept it).
Messages go out uncompressed: readers of the alerts topic need no codec libraries.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

log = logging.getLogger(__name__)

Headers = list[tuple[str, bytes]]


class DeliveryError(RuntimeError):
    """The broker did not confirm every message sent since the last ``confirm``."""


class KafkaProducer:
    def __init__(
        self,
        client: dict[str, Any],
        *,
        delivery_timeout: float = 120.0,
        max_message_bytes: int = 4 * 1024 * 1024,
        linger_ms: float = 5.0,
    ) -> None:
        """``client``: bootstrap servers and security properties, as every client of the cluster uses."""
        self.delivery_timeout = delivery_timeout
        self._producer = Producer(
            {
                **client,
                "acks": "all",
                "enable.idempotence": True,
                "linger.ms": linger_ms,
                "partitioner": "murmur2_random",
                "message.max.bytes": max_message_bytes,
                "delivery.timeout.ms": int(delivery_timeout * 1000),
                "error_cb": _log_client_error,
            }
        )
        self._lock = threading.Lock()
        self._failures: list[str] = []

    def send(
        self, topic: str, value: bytes, key: bytes | None = None, headers: Headers | None = None
    ) -> None:
        """Queue one message; its outcome is known at the next ``confirm``."""
        while True:
            try:
                self._producer.produce(
                    topic,
                    value,
                    key,
                    # The stub types headers as list[tuple[str, str | bytes | None]]; list is
                    # invariant, so it refuses list[tuple[str, bytes]], which librdkafka takes.
                    headers=headers,  # type: ignore[arg-type]
                    on_delivery=self._delivered,
                )
                return
            except BufferError:  # the local queue is full: let deliveries drain it
                self._producer.poll(0.1)
            except KafkaException as error:  # refused before sending, e.g. too large
                self._fail(f"{topic}: {error.args[0].str()}")
                return

    def confirm(self) -> None:
        """Wait until the broker has confirmed every queued message, or raise ``DeliveryError``."""
        left = self._producer.flush(self.delivery_timeout)
        with self._lock:
            failures, self._failures = self._failures, []
        if left:
            failures.append(f"{left} message(s) not confirmed within {self.delivery_timeout:.0f}s")
        if failures:
            summary = "; ".join(failures[:5])
            if len(failures) > 5:
                summary += f" (and {len(failures) - 5} more)"
            raise DeliveryError(summary)

    def queued(self) -> int:
        """Messages sent and not yet confirmed (or failed) by the broker."""
        return len(self._producer)

    def close(self) -> None:
        """Deliver what is still queued (best effort): nothing depends on it any more."""
        left = self._producer.flush(min(self.delivery_timeout, 10.0))
        if left:
            log.warning("%d message(s) still unconfirmed when the producer closed", left)

    def _delivered(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            self._fail(f"{message.topic()}: {error.str()}")

    def _fail(self, reason: str) -> None:
        with self._lock:
            self._failures.append(reason)


def _log_client_error(error: KafkaError) -> None:
    """librdkafka reports connection trouble here and retries by itself; fatal errors end the worker."""
    if error.fatal():
        log.error("kafka producer: fatal error %s", error.str())
    else:
        log.warning("kafka producer: %s", error.str())
