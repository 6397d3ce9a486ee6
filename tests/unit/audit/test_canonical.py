"""The hashed forms, checked against an independent stdlib implementation of docs/audit.md."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone

from audit.canonical import canonical_record, chain_hash, checkpoint_message, genesis, record_hash, timestamp
from schemas.records import DecisionRow
from tests.unit.audit.memory import make


def _doc_json(value: object) -> bytes:
    """The compact JSON docs/audit.md specifies, with Python's json module."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def test_timestamps_are_utc_milliseconds_whatever_the_input_zone() -> None:
    moment = datetime(2026, 11, 26, 10, 0, 0, 123987, tzinfo=timezone(timedelta(hours=2)))
    assert timestamp(moment) == "2026-11-26T08:00:00.123Z"
    assert timestamp(moment.replace(tzinfo=None)) == "2026-11-26T10:00:00.123Z"  # naive is UTC


def test_a_row_read_back_from_clickhouse_has_the_same_canonical_form() -> None:
    written = make(DecisionRow, event_id="e-1", ts=datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC))
    read_back = written._replace(ts=datetime(2026, 1, 2, 3, 4, 5, 678000))  # DateTime64(3), naive
    assert canonical_record(written) == canonical_record(read_back)
    document = json.loads(canonical_record(written))
    assert document["ts"] == "2026-01-02T03:04:05.678Z"
    assert list(document) == sorted(document)


def test_chain_hash_matches_the_documented_recipe() -> None:
    record = '{"decision":"allow","event_id":"é-1"}'
    digest = record_hash(record)
    assert digest == hashlib.sha256(record.encode()).hexdigest()
    prev = genesis("ai.inference:0")
    assert prev == hashlib.sha256(_doc_json(["vigil.audit.v1", "ai.inference:0"])).hexdigest()
    fields = [prev, "ai.inference:0", "decision", "é-1", "é-1", 42, digest, "2026-11-26T08:00:00.123Z"]
    assert chain_hash(*fields) == hashlib.sha256(_doc_json(fields)).hexdigest()  # type: ignore[arg-type]


def test_control_characters_and_unicode_hash_the_same_in_both_implementations() -> None:
    fields = ["p", "s", "k", 'id\x1f\n"x', "ü\u2028", -1, "d", "t"]
    assert chain_hash(*fields) == hashlib.sha256(_doc_json(fields)).hexdigest()  # type: ignore[arg-type]


def test_checkpoint_message_matches_the_documented_recipe() -> None:
    message = checkpoint_message("ai.access:1", 7, "c" * 64, "2026-11-26T08:00:00.000Z", "rev", "k1")
    expected = {
        "bundle_revision": "rev",
        "chain_hash": "c" * 64,
        "created_at": "2026-11-26T08:00:00.000Z",
        "format": "vigil.audit.v1",
        "key_id": "k1",
        "seq": 7,
        "stream": "ai.access:1",
    }
    assert message == json.dumps(expected, separators=(",", ":"), sort_keys=True).encode()
