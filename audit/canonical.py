"""The byte strings the audit trail hashes and signs, defined once.

An auditor re-implements these to verify the trail without Vigil's code, so each one
is plain, compact JSON (UTF-8, no spaces, ``ensure_ascii=False`` in Python's json
module terms) and SHA-256, spelled out in docs/audit.md:

- record hash: SHA-256 of the stored ``record`` string;
- chain hash: SHA-256 of the JSON array ``[prev_hash, stream, kind, record_id,
  event_id, source_offset, record_hash, appended_at]``;
- genesis (the ``prev_hash`` of a stream's first entry): SHA-256 of
  ``["vigil.audit.v1", stream]``;
- checkpoint message (what Ed25519 signs): the JSON object of the checkpoint's
  fields with sorted keys, without ``signature``.

The sequence number is deliberately not hashed: order is carried by the links, so a
row whose ``seq`` was changed still proves what it is and where it came from, which
lets the verifier tell a reordering from a modification.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any, NamedTuple

import orjson

FORMAT = "vigil.audit.v1"


def as_utc(moment: datetime) -> datetime:
    """Aware UTC; a naive value (as some ClickHouse clients return) is taken as UTC."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def timestamp(moment: datetime) -> str:
    """UTC with millisecond precision, the precision ClickHouse stores (DateTime64(3))."""
    offset = moment.utcoffset()
    if offset:
        moment = moment.astimezone(UTC)
    return moment.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


def parse_timestamp(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _datetime_text(value: Any) -> str:
    if isinstance(value, datetime):
        return timestamp(value)
    raise TypeError(f"{type(value).__name__} has no canonical form")


def canonical_record(row: NamedTuple) -> str:
    """A stored row as sorted-key JSON; equal for the row written and the row read back."""
    return canonical_record_bytes(row).decode()


def canonical_record_bytes(row: NamedTuple) -> bytes:
    """``canonical_record`` as the UTF-8 bytes its hash covers (hashed without re-encoding)."""
    return orjson.dumps(
        dict(zip(row._fields, row, strict=True)),
        default=_datetime_text,
        option=orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_NON_STR_KEYS,
    )


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def record_hash(record: str) -> str:
    return sha256_hex(record.encode())


def genesis(stream: str) -> str:
    return sha256_hex(orjson.dumps([FORMAT, stream]))


def chain_hash(
    prev_hash: str,
    stream: str,
    kind: str,
    record_id: str,
    event_id: str,
    source_offset: int,
    record_digest: str,
    appended_at: str,
) -> str:
    """Link one entry to the one before it; ``appended_at`` is already ``timestamp()``-formatted."""
    return sha256_hex(
        orjson.dumps(
            [prev_hash, stream, kind, record_id, event_id, source_offset, record_digest, appended_at]
        )
    )


def checkpoint_message(
    stream: str, seq: int, chain: str, created_at: str, bundle_revision: str, key_id: str
) -> bytes:
    return orjson.dumps(
        {
            "bundle_revision": bundle_revision,
            "chain_hash": chain,
            "created_at": created_at,
            "format": FORMAT,
            "key_id": key_id,
            "seq": seq,
            "stream": stream,
        },
        option=orjson.OPT_SORT_KEYS,
    )
