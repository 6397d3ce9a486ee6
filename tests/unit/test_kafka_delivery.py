"""At-least-once rules of the Kafka driver: retry storage, never ack what is unstored."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from faust.types import Message

from streams.kafka_app import StoreAbortedError, _store_until_done, _withhold
from vigil.pipeline import BatchResult


class FlakyStore:
    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.writes: list[dict[str, Any]] = []
        self.attempts = 0

    def write(self, tables: dict[str, Any]) -> None:
        self.attempts += 1
        if self.attempts <= self.failures:
            raise ConnectionError("clickhouse unavailable")
        self.writes.append(tables)


def test_storage_errors_are_retried_until_the_batch_is_stored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("streams.kafka_app.MAX_BACKOFF_SECONDS", 0.01)
    store = FlakyStore(failures=3)
    _store_until_done(store, BatchResult(), threading.Event())  # type: ignore[arg-type]
    assert store.attempts == 4
    assert len(store.writes) == 1


def test_a_stopping_worker_abandons_the_batch_instead_of_skipping_it() -> None:
    store = FlakyStore(failures=10**6)
    stopping = threading.Event()
    stopping.set()
    with pytest.raises(StoreAbortedError):
        _store_until_done(store, BatchResult(), stopping)  # type: ignore[arg-type]
    assert store.writes == []


class Event:
    def __init__(self, message: Message) -> None:
        self.message = message


def _message(offset: int) -> Message:
    message = Message("ai.inference", 0, offset, 0.0, None, None, b"k", b"v", None)
    message.incref()  # one stream holds it, as when the consumer delivers it
    return message


def test_withheld_messages_are_never_marked_safe_to_commit() -> None:
    """faust's Stream.ack marks an offset committable only when Message.ack returns True."""
    kept, withheld = _message(1), _message(2)
    _withhold([Event(withheld)])  # type: ignore[list-item]
    assert kept.ack(consumer=None) is True  # type: ignore[arg-type]
    assert withheld.ack(consumer=None) is False  # type: ignore[arg-type]
