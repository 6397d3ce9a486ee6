"""What a batch publishes: dead letters as they arrived, alerts, and one confirmation for all."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime

from schemas.records import RejectedRow, header_text
from streams.outputs import RECORD_OVERHEAD, KafkaOutputs
from vigil.pipeline import BatchResult
from vigil.settings import Settings


class Producer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes | None, dict[str, bytes]]] = []
        self.confirmed = 0

    def send(
        self,
        topic: str,
        value: bytes,
        key: bytes | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        self.sent.append((topic, value, key, dict(headers or [])))

    def confirm(self) -> None:
        self.confirmed += len(self.sent)


def _rejected(value: bytes, headers: list[tuple[str, str]] | None = None) -> RejectedRow:
    return RejectedRow(
        rejected_id="r1",
        received_at=datetime(2026, 1, 1, tzinfo=UTC),
        topic="ai.inference",
        partition=2,
        offset=41,
        key="risk-v1",
        code="oversize",
        reason="message larger than 65536 bytes",
        raw_base64=base64.b64encode(value).decode(),
        size=len(value),
        headers=headers or [],
    )


def _outputs(producer: Producer, limit: int) -> KafkaOutputs:
    settings = Settings(kafka={"topic_prefix": "p."})  # type: ignore[arg-type]
    return KafkaOutputs(settings, producer, store=None, deadletter_limit=limit)  # type: ignore[arg-type]


def test_a_dead_letter_is_the_message_as_it_arrived_with_why_and_where() -> None:
    producer = Producer()
    _outputs(producer, 1_048_588).publish(BatchResult(rejected=[_rejected(b'{"cut')]))
    ((topic, value, key, headers),) = producer.sent
    assert (topic, value, key) == ("p.ai.deadletter", b'{"cut', b"risk-v1")
    assert headers["vigil.code"] == b"oversize"
    assert (headers["vigil.topic"], headers["vigil.partition"], headers["vigil.offset"]) == (
        b"ai.inference",
        b"2",
        b"41",
    )
    assert "vigil.truncated" not in headers
    assert producer.confirmed == 1


def test_a_message_at_the_brokers_limit_still_leaves_as_a_dead_letter_cut_to_fit() -> None:
    producer = Producer()
    limit = 1_048_588
    huge = b"x" * (limit - 100)  # accepted by the broker, too large once headers are added
    _outputs(producer, limit).publish(BatchResult(rejected=[_rejected(huge)]))
    ((_, value, key, headers),) = producer.sent
    assert headers["vigil.truncated"] == str(len(huge)).encode()
    assert headers["vigil.sha256"] == hashlib.sha256(huge).hexdigest().encode()
    framing = len(value) + len(key or b"") + sum(len(k) + len(v) for k, v in headers.items())
    assert framing <= limit - RECORD_OVERHEAD
    assert huge.startswith(value)
    assert producer.confirmed == 1


def test_a_dead_letter_keeps_the_headers_the_message_arrived_with() -> None:
    producer = Producer()
    binary = [("ce_id", "evt-1"), ("ce_type", "vigil.inference"), ("trace-bin", header_text(b"\xff\x00"))]
    _outputs(producer, 1_048_588).publish(BatchResult(rejected=[_rejected(b"{}", binary)]))
    ((_, _, _, headers),) = producer.sent
    assert headers["ce_id"] == b"evt-1"
    assert headers["ce_type"] == b"vigil.inference"
    assert headers["trace-bin"] == b"\xff\x00"
    assert headers["vigil.code"] == b"oversize"
