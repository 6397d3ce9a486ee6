"""``vigil publish``: sign JSON-lines events and send them to their topics.

What a service team's producer does, as a command: each event is signed with a
key from the key registry that may speak for its ``source`` (unless it is already
signed), sent to the topic of its type, keyed by its routing key. ``--raw`` sends
lines untouched to one topic, for replaying dead letters or testing rejects.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from confluent_kafka import KafkaError, KafkaException, Message, Producer

from identity.keyring import Keyring, secret_bytes
from identity.signing import HmacSigner, Signer
from schemas.decode import Rejection, decode
from streams.topics import TOPIC_BY_TYPE
from vigil.kafka_clients import librdkafka_config
from vigil.settings import Settings

log = logging.getLogger(__name__)

DELIVERY_TIMEOUT = 60.0


@dataclass(frozen=True)
class Outgoing:
    """How lines become messages: signed with the registry's key for their source (or
    ``key_id``), with an explicit ``signer``, or sent untouched to ``raw_topic``."""

    settings: Settings
    keyring: Keyring | None = None
    key_id: str | None = None
    raw_topic: str | None = None
    signer: Signer | None = None
    event_time: bool = False
    """Set each message's Kafka timestamp from the event's ``ts`` instead of the send time
    (not with ``raw_topic``: raw lines are sent as they are)."""


@dataclass
class PublishReport:
    sent: int = 0
    errors: list[str] = field(default_factory=list)


def signer_for(document: dict[str, Any], keyring: Keyring, key_id: str | None) -> Signer:
    """The registry's HMAC key for the event's source (or ``key_id``)."""
    source = document.get("source")
    principal = _principal_id(document)
    now = datetime.now(UTC)
    if key_id:
        candidates = [key_id]
    else:  # during a rotation, the key valid now that may speak for this event
        candidates = [
            k
            for k, e in keyring.entries.items()
            if source in e.sources and e.alg == "hmac-sha256" and e.valid_at(now) and e.speaks_for(principal)
        ]
    entry = keyring.get(candidates[0]) if candidates else None
    if entry is None:
        raise ValueError(f"no key in the registry that is valid now may sign for source {source!r}")
    if entry.secret is None:
        raise ValueError(f"key {entry.key_id!r} is {entry.alg}: sign with --private-key")
    return HmacSigner(entry.key_id, secret_bytes(entry.secret))


def prepare(
    document: dict[str, Any], keyring: Keyring | None, key_id: str | None, signer: Signer | None
) -> dict[str, Any]:
    if "signature" in document:
        return document
    if signer is None:
        if keyring is None:
            raise ValueError("no key registry to sign with")
        signer = signer_for(document, keyring, key_id)
    return signer.sign(document)


def route(document: dict[str, Any]) -> tuple[str, bytes | None]:
    kind = document.get("type")
    if kind not in TOPIC_BY_TYPE:
        raise ValueError(f"unknown event type {kind!r}")
    key = _principal_id(document) if kind == "access" else document.get("model_id")
    return TOPIC_BY_TYPE[kind], str(key).encode() if key else None


def _principal_id(document: dict[str, Any]) -> str:
    principal = document.get("principal")
    return str(principal.get("id", "")) if isinstance(principal, dict) else ""


def publish(lines: Iterable[bytes], outgoing: Outgoing) -> PublishReport:
    """Send every line it can; a line that cannot be signed or is refused by the broker is
    reported as ``line N: why`` and the others still go out."""
    report = PublishReport()
    producer = Producer(producer_config(outgoing.settings))
    outcomes: dict[int, str | None] = {}
    """Line number to the broker's answer: None when confirmed, else why it was refused."""

    def delivered(number: int) -> Callable[[KafkaError | None, Message], None]:
        def report_delivery(error: KafkaError | None, _message: Message) -> None:
            outcomes[number] = None if error is None else error.str()

        return report_delivery

    queued: list[int] = []
    for number, topic, key, payload, millis in _messages(lines, report, outgoing):
        try:
            _produce(producer, topic, key, payload, millis, delivered(number))
        except KafkaException as error:  # refused before sending, e.g. larger than allowed
            report.errors.append(f"line {number}: {error.args[0].str()}")
            continue
        queued.append(number)
    producer.flush(DELIVERY_TIMEOUT)
    for number in queued:
        outcome = outcomes.get(number, f"not confirmed within {DELIVERY_TIMEOUT:.0f}s")
        if outcome is None:
            report.sent += 1
        else:
            report.errors.append(f"line {number}: {outcome}")
    report.errors.sort(key=_line_number)
    return report


def preview(lines: Iterable[bytes], outgoing: Outgoing) -> tuple[list[bytes], PublishReport]:
    """What ``publish`` would send, without a broker: one JSON object per message.

    Each object holds the topic, the message key and the value exactly as it would be
    sent (the signed event), and with ``event_time`` the message time in milliseconds,
    so a producer can check its signing and routing offline.
    Lines that could not be sent are reported as ``publish`` reports them.
    """
    report = PublishReport()
    shown: list[bytes] = []
    for number, topic, key, payload, millis in _messages(lines, report, outgoing):
        message: dict[str, Any] = {
            "line": number,
            "topic": topic,
            "key": key.decode("utf-8", "replace") if key else None,
            "value": payload.decode("utf-8", "replace"),
        }
        if millis is not None:
            message["timestamp_ms"] = millis
        shown.append(orjson.dumps(message))
        report.sent += 1
    return shown, report


def _messages(
    lines: Iterable[bytes], report: PublishReport, outgoing: Outgoing
) -> Iterator[tuple[int, str, bytes | None, bytes, int | None]]:
    """(line number, topic, key, value, message time in ms or None) of each line that can be
    sent; the others go to ``report``."""
    for number, line in enumerate(lines, start=1):
        value = line.rstrip(b"\r\n")
        if not value.strip():
            continue
        try:
            topic, key, payload, millis = _message(value, outgoing)
        except (ValueError, orjson.JSONDecodeError) as error:
            report.errors.append(f"line {number}: {error}")
            continue
        yield number, topic, key, payload, millis


def _line_number(problem: str) -> int:
    return int(problem.split(":", 1)[0].removeprefix("line "))


def producer_config(settings: Settings) -> dict[str, Any]:
    """Idempotent (a retried send never lands twice: a second copy would be judged a replay),
    acknowledged by all replicas, keys hashed the way Java producers hash them."""
    return {
        **librdkafka_config(settings),
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": 5,
        "partitioner": "murmur2_random",
        "delivery.timeout.ms": int(DELIVERY_TIMEOUT * 1000),
    }


def _produce(
    producer: Producer,
    topic: str,
    key: bytes | None,
    payload: bytes,
    millis: int | None,
    on_delivery: Callable[[KafkaError | None, Message], None],
) -> None:
    """Queue one message, waiting while the local queue is full."""
    while True:
        try:
            if millis is None:
                producer.produce(topic, payload, key, on_delivery=on_delivery)
            else:
                producer.produce(topic, payload, key, on_delivery=on_delivery, timestamp=millis)
            return
        except BufferError:
            producer.poll(0.1)


def _message(value: bytes, outgoing: Outgoing) -> tuple[str, bytes | None, bytes, int | None]:
    settings = outgoing.settings
    if outgoing.raw_topic is not None:
        return settings.topic(outgoing.raw_topic), None, value, None
    document = orjson.loads(value)
    if not isinstance(document, dict):
        raise ValueError("not a JSON object")
    problem = decode(value, settings.max_event_bytes)
    if isinstance(problem, Rejection):  # the worker would reject it: say why here instead
        raise ValueError(f"{problem.code}: {problem.reason}")
    millis = event_millis(document) if outgoing.event_time else None
    signed = prepare(document, outgoing.keyring, outgoing.key_id, outgoing.signer)
    topic, key = route(signed)
    return settings.topic(topic), key, orjson.dumps(signed), millis


def event_millis(document: dict[str, Any]) -> int:
    """The event's ``ts`` as Kafka message time (ms since the epoch); a missing ``ts`` or one
    that is not an RFC 3339 time with an offset is a ``ValueError`` naming it."""
    ts = document.get("ts")
    try:
        when = datetime.fromisoformat(ts) if isinstance(ts, str) else None
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise ValueError(f"ts {ts!r} is not an RFC 3339 time with an offset: cannot be the message time")
    return int(when.timestamp() * 1000)
