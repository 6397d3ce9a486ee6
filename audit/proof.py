"""Proofs for one event: its ledger entries, each chained to a signed checkpoint.

A proof holds the entry (with the full record), the fields of every later entry up
to the first checkpoint that covers it, and that checkpoint. Checking it needs the
public key and nothing else: recompute the record hash, the chain hash forward
through the path, and the checkpoint's signature. The auditor should also compare
the checkpoint with a copy obtained independently (the ``ai.audit`` topic, the
export directory): a proof against a checkpoint nobody else has seen proves little.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from audit.canonical import FORMAT, chain_hash, record_hash, timestamp
from audit.checkpoint import Checkpoint, CheckpointFormatError
from audit.keys import TrustedKeys
from audit.source import Entry, LedgerSource
from audit.verify import ExternalCheckpoint

_PATH_FIELDS = ("kind", "record_id", "event_id", "source_offset", "record_hash", "appended_at")


class ProofError(RuntimeError):
    """No proof can be built (unknown event, broken chain, nothing signed yet)."""


def build_proof(
    source: LedgerSource, keys: TrustedKeys, event_id: str, external: Sequence[ExternalCheckpoint] = ()
) -> dict[str, Any]:
    located = source.locate(event_id)
    if not located:
        raise ProofError(f"event {event_id!r} has no entries in the audit ledger")
    proofs = []
    pending = []
    for stream, seq, record_id in located:
        checkpoint = _covering(source, keys, external, stream, seq)
        if checkpoint is None:
            pending.append(f"{stream} seq {seq}")
            continue
        proofs.append(_chain_proof(source, stream, seq, record_id, checkpoint))
    if not proofs:
        raise ProofError(
            f"the entries of {event_id!r} ({', '.join(pending)}) are not yet covered by a signed "
            "checkpoint; one follows within the checkpoint cadence"
        )
    return {"format": FORMAT, "event_id": event_id, "proofs": proofs, "not_yet_covered": pending}


def _covering(
    source: LedgerSource, keys: TrustedKeys, external: Sequence[ExternalCheckpoint], stream: str, seq: int
) -> Checkpoint | None:
    """The earliest valid checkpoint at or after ``seq``, preferring exported copies."""
    candidates = [c.checkpoint for c in external if c.checkpoint is not None and c.stream == stream]
    candidates += source.checkpoints(stream)
    valid = [c for c in candidates if c.seq >= seq and c.verify(keys)]
    return min(valid, key=lambda c: c.seq, default=None)


def _chain_proof(
    source: LedgerSource, stream: str, seq: int, record_id: str, checkpoint: Checkpoint
) -> dict[str, Any]:
    at: dict[int, list[Entry]] = {}
    for entry in source.entries(stream, seq, checkpoint.seq):
        at.setdefault(entry.seq, []).append(entry)
    target = next((e for e in at.get(seq, ()) if e.record_id == record_id), None)
    if target is None:
        raise ProofError(f"{stream} seq {seq} vanished while building the proof")
    path: list[Entry] = []
    link = target.chain_hash
    for position in range(seq + 1, checkpoint.seq + 1):
        following = next((e for e in at.get(position, ()) if e.prev_hash == link), None)
        if following is None:
            raise ProofError(
                f"{stream}: the chain breaks at seq {position} before checkpoint {checkpoint.seq}; "
                "run `vigil audit verify`"
            )
        path.append(following)
        link = following.chain_hash
    if link != checkpoint.chain_hash:
        raise ProofError(
            f"{stream}: the ledger does not reach checkpoint {checkpoint.seq}; run `vigil audit verify`"
        )
    return {
        "stream": stream,
        "entry": {
            "seq": target.seq,
            "kind": target.kind,
            "record_id": target.record_id,
            "event_id": target.event_id,
            "source_offset": target.source_offset,
            "record": target.record,
            "record_hash": target.record_hash,
            "prev_hash": target.prev_hash,
            "appended_at": target.appended_at,
        },
        "path": [{name: getattr(e, name) for name in _PATH_FIELDS} for e in path],
        "checkpoint": checkpoint.document(),
    }


@dataclass(frozen=True, slots=True)
class CheckedEntry:
    stream: str
    seq: int
    kind: str
    record: dict[str, Any]
    checkpoint: Checkpoint

    def __str__(self) -> str:
        verdict = f" ({self.record['decision']})" if "decision" in self.record else ""
        return (
            f"{self.kind}{verdict} is entry {self.seq} of {self.stream}, covered by the checkpoint at "
            f"seq {self.checkpoint.seq} signed {timestamp(self.checkpoint.created_at)} "
            f"by key {self.checkpoint.key_id}"
        )


def check_proof(document: Any, keys: TrustedKeys) -> list[CheckedEntry]:
    """Every proof in ``document`` checked with the public keys alone; raises ``ProofError``."""
    try:
        if document.get("format") != FORMAT:
            raise ProofError(f"not a {FORMAT} proof")
        return [_check_one(document["event_id"], proof, keys) for proof in document["proofs"]]
    except (AttributeError, KeyError, TypeError, ValueError, CheckpointFormatError) as error:
        if isinstance(error, ProofError):
            raise
        raise ProofError(f"malformed proof: {type(error).__name__}: {error}") from error


def _check_one(event_id: str, proof: dict[str, Any], keys: TrustedKeys) -> CheckedEntry:
    stream, entry = proof["stream"], proof["entry"]
    where = f"{stream} seq {entry['seq']}"
    if entry["event_id"] != event_id:
        raise ProofError(f"{where}: the entry is for event {entry['event_id']!r}, not {event_id!r}")
    if record_hash(entry["record"]) != entry["record_hash"]:
        raise ProofError(f"{where}: the record does not match its record hash")
    record = orjson.loads(entry["record"])
    if record.get("event_id") != event_id:
        raise ProofError(f"{where}: the record is about event {record.get('event_id')!r}, not {event_id!r}")
    link = chain_hash(
        entry["prev_hash"],
        stream,
        entry["kind"],
        entry["record_id"],
        entry["event_id"],
        entry["source_offset"],
        entry["record_hash"],
        entry["appended_at"],
    )
    for step in proof["path"]:
        link = chain_hash(link, stream, *(step[name] for name in _PATH_FIELDS))
    checkpoint = Checkpoint.from_document(proof["checkpoint"])
    if checkpoint.stream != stream or checkpoint.seq != entry["seq"] + len(proof["path"]):
        raise ProofError(f"{where}: the checkpoint is for {checkpoint.stream} seq {checkpoint.seq}")
    if not checkpoint.verify(keys):
        raise ProofError(f"{where}: the checkpoint's signature does not verify under the trusted keys")
    if checkpoint.chain_hash != link:
        raise ProofError(f"{where}: the chain does not lead to the signed checkpoint")
    return CheckedEntry(stream, int(entry["seq"]), str(entry["kind"]), record, checkpoint)
