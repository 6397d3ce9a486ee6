"""Signed checkpoints: the head of one ledger stream at one moment.

A checkpoint says "stream S had SEQ entries and its chain hash was H", signed with
Ed25519. Because H commits to every entry before it, one valid checkpoint vouches
for the whole prefix; copies kept outside ClickHouse are what make a deleted tail
or a rewritten history visible.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from audit.canonical import FORMAT, as_utc, checkpoint_message, parse_timestamp, timestamp
from audit.keys import Signer, TrustedKeys
from schemas.audit import CheckpointRow


class CheckpointFormatError(ValueError):
    """A checkpoint document is not valid JSON of the expected shape."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    stream: str
    seq: int
    chain_hash: str
    created_at: datetime
    bundle_revision: str
    key_id: str
    signature: str

    @classmethod
    def sign(
        cls,
        signer: Signer,
        stream: str,
        seq: int,
        chain_hash: str,
        bundle_revision: str,
        created_at: datetime | None = None,
    ) -> Checkpoint:
        moment = parse_timestamp(timestamp(created_at or datetime.now(UTC)))  # stored precision
        unsigned = cls(stream, seq, chain_hash, moment, bundle_revision, signer.key_id, "")
        return unsigned.with_signature(signer.sign(unsigned.message()))

    def with_signature(self, signature: str) -> Checkpoint:
        return Checkpoint(
            self.stream,
            self.seq,
            self.chain_hash,
            self.created_at,
            self.bundle_revision,
            self.key_id,
            signature,
        )

    def message(self) -> bytes:
        return checkpoint_message(
            self.stream,
            self.seq,
            self.chain_hash,
            timestamp(self.created_at),
            self.bundle_revision,
            self.key_id,
        )

    def verify(self, keys: TrustedKeys) -> bool:
        return keys.verify(self.key_id, self.message(), self.signature)

    def to_row(self) -> CheckpointRow:
        return CheckpointRow(
            self.stream,
            self.seq,
            self.chain_hash,
            self.created_at,
            self.bundle_revision,
            self.key_id,
            self.signature,
        )

    @classmethod
    def from_row(cls, row: CheckpointRow | tuple[Any, ...]) -> Checkpoint:
        stream, seq, chain, created_at, revision, key_id, signature = row
        return cls(
            str(stream), int(seq), str(chain), as_utc(created_at), str(revision), str(key_id), str(signature)
        )

    def document(self) -> dict[str, Any]:
        """The exported form: the signed fields plus the signature."""
        fields: dict[str, Any] = orjson.loads(self.message())
        fields["signature"] = self.signature
        return fields

    def to_json(self) -> bytes:
        return orjson.dumps(self.document(), option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2)

    @classmethod
    def from_document(cls, document: Any) -> Checkpoint:
        try:
            if document.get("format") != FORMAT:
                raise CheckpointFormatError(f"unknown checkpoint format {document.get('format')!r}")
            seq = document["seq"]
            if not isinstance(seq, int) or isinstance(seq, bool):
                raise CheckpointFormatError("seq is not an integer")
            if not 0 <= seq < 2**63:
                raise CheckpointFormatError(f"seq {seq} is out of range")
            return cls(
                stream=str(document["stream"]),
                seq=seq,
                chain_hash=str(document["chain_hash"]),
                created_at=parse_timestamp(str(document["created_at"])),
                bundle_revision=str(document["bundle_revision"]),
                key_id=str(document["key_id"]),
                signature=str(document["signature"]),
            )
        except (AttributeError, KeyError, TypeError, ValueError) as error:
            if isinstance(error, CheckpointFormatError):
                raise
            raise CheckpointFormatError(f"not a checkpoint: {error}") from error

    @classmethod
    def from_json(cls, data: bytes | str) -> Checkpoint:
        try:
            document = orjson.loads(data)
        except orjson.JSONDecodeError as error:
            raise CheckpointFormatError(f"not JSON: {error}") from error
        return cls.from_document(document)
