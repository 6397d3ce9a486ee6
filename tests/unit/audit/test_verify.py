"""The verifier names the first place a ledger was tampered with, whatever was done."""

from __future__ import annotations

import functools
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from audit.canonical import chain_hash, record_hash, timestamp
from audit.checkpoint import Checkpoint
from audit.keys import Signer, TrustedKeys
from audit.ledger import Ledger
from audit.verify import (
    CHECKPOINT_DELETED,
    DELETED,
    FORGED_CHECKPOINT,
    INSERTED,
    MODIFIED,
    REORDERED,
    REWRITTEN,
    TRUNCATED,
    UNLINKED,
    ExternalCheckpoint,
    Report,
    Verifier,
)
from schemas.audit import LedgerRow
from tests.unit.audit.memory import MemoryStore, SourceView, batch

STREAM = "ai.inference:0"
SIGNER = Signer(Ed25519PrivateKey.generate())
KEYS = TrustedKeys([SIGNER.public_key])


def build(entries: int = 120, every: int = 25) -> MemoryStore:
    """One stream of ``entries`` decisions (plus a few findings), checkpointed every ``every``."""
    ledger, checkpoints = _built(entries, every)
    store = MemoryStore()
    store.ledger, store.checkpoints = list(ledger), list(checkpoints)
    return store


@functools.cache
def _built(entries: int, every: int) -> tuple[tuple[LedgerRow, ...], tuple[Checkpoint, ...]]:
    store = MemoryStore()
    ledger = Ledger(store, SIGNER, checkpoint_entries=every)  # type: ignore[arg-type]
    offset = 0
    while len(store.ledger) < entries:
        store.store(ledger, batch("ai.inference", 0, range(offset, offset + 10), denied=[offset + 3]))
        offset += 10
    store.write(ledger.closing().tables)
    return tuple(store.ledger), tuple(store.checkpoints)


def exported(store: MemoryStore) -> list[ExternalCheckpoint]:
    return [ExternalCheckpoint(f"export/{c.seq}.json", c.stream, c) for c in store.checkpoints]


def verify(store: MemoryStore, external: list[ExternalCheckpoint] | None = None, **scope: object) -> Report:
    return Verifier(SourceView(store), KEYS, external or []).run(**scope)  # type: ignore[arg-type]


def first(report: Report) -> tuple[str, int | None]:
    problem = report.problems[0]
    return problem.kind, problem.seq


def at(store: MemoryStore, seq: int) -> int:
    return next(i for i, r in enumerate(store.ledger) if r.seq == seq)


def relinked(row: LedgerRow, prev: str) -> LedgerRow:
    """``row`` re-chained onto ``prev``, as an attacker who knows the format would."""
    digest = record_hash(row.record)
    chain = chain_hash(
        prev,
        row.stream,
        row.kind,
        row.record_id,
        row.event_id,
        row.source_offset,
        digest,
        timestamp(row.appended_at),
    )
    return row._replace(record_hash=digest, prev_hash=prev, chain_hash=chain)


def test_an_untouched_ledger_verifies() -> None:
    store = build()
    report = verify(store, exported(store))
    assert report.ok, report.problems
    (stream,) = report.streams
    assert stream.entries == len(store.ledger)
    assert stream.checkpoints_matched == len(store.checkpoints)
    assert stream.uncovered == 0


def test_a_changed_record_is_named() -> None:
    store = build()
    i = at(store, 40)
    store.ledger[i] = store.ledger[i]._replace(record=store.ledger[i].record.replace("allow", "deny"))
    report = verify(store)
    assert first(report) == (MODIFIED, 40)
    assert "record does not match" in report.problems[0].detail
    assert len(report.problems) == 1  # the links still hold: nothing else is blamed


def test_a_changed_field_is_named() -> None:
    store = build()
    i = at(store, 7)
    store.ledger[i] = store.ledger[i]._replace(source_offset=999)
    assert first(verify(store)) == (MODIFIED, 7)


def test_a_changed_sequence_number_is_named() -> None:
    store = build()
    i = at(store, 30)
    store.ledger[i] = store.ledger[i]._replace(seq=31)  # now two rows claim 31, none 30
    report = verify(store)
    assert first(report)[1] in (30, 31)
    assert report.problems[0].kind in (MODIFIED, REORDERED)


def test_a_deleted_entry_is_named() -> None:
    store = build()
    del store.ledger[at(store, 50)]
    report = verify(store)
    assert first(report) == (DELETED, 50)
    assert report.problems[0].last_seq == 50


def test_deleting_and_renumbering_is_still_caught_where_it_happened() -> None:
    store = build()
    del store.ledger[at(store, 50)]
    store.ledger = [r._replace(seq=r.seq - 1) if r.seq > 50 else r for r in store.ledger]
    assert first(verify(store)) == (UNLINKED, 50)


def test_a_forged_entry_with_a_taken_sequence_number_is_named() -> None:
    store = build()
    i = at(store, 60)
    genuine = store.ledger[i]
    forged = relinked(
        genuine._replace(record=genuine.record.replace("allow", "deny"), record_id="x"), genuine.prev_hash
    )
    store.ledger.insert(i, forged)  # read first: the verifier must still pick the genuine one
    report = verify(store)
    assert first(report) == (INSERTED, 60)
    assert "x" in report.problems[0].detail
    assert len(report.problems) == 1


def test_a_forged_entry_that_links_nowhere_is_named() -> None:
    store = build()
    i = at(store, 61)
    store.ledger.insert(
        i, store.ledger[i]._replace(record_id="stray", chain_hash="0" * 64, prev_hash="1" * 64)
    )
    assert first(verify(store)) == (INSERTED, 61)


def test_an_inserted_entry_with_the_rest_renumbered_is_named() -> None:
    store = build()
    i = at(store, 70)
    forged = relinked(store.ledger[i]._replace(record_id="forged"), store.ledger[i].prev_hash)
    store.ledger = [r._replace(seq=r.seq + 1) if r.seq >= 70 else r for r in store.ledger]
    store.ledger.insert(i, forged._replace(seq=70))
    assert first(verify(store)) == (INSERTED, 70)


@pytest.mark.parametrize(("a", "b"), [(33, 34), (33, 37), (10, 90)])
def test_swapped_entries_are_named(a: int, b: int) -> None:
    store = build()
    i, j = at(store, a), at(store, b)
    store.ledger[i], store.ledger[j] = store.ledger[j]._replace(seq=a), store.ledger[i]._replace(seq=b)
    report = verify(store)
    assert first(report) == (REORDERED, a)
    assert report.problems[0].last_seq == b


def test_swapped_entries_beyond_the_lookahead_are_still_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("audit.verify.LOOKAHEAD", 8)
    store = build()
    i, j = at(store, 20), at(store, 80)
    store.ledger[i], store.ledger[j] = store.ledger[j]._replace(seq=20), store.ledger[i]._replace(seq=80)
    assert first(verify(store)) == (UNLINKED, 20)


def test_a_dropped_tail_is_caught_by_the_exported_checkpoint() -> None:
    store = build()
    copies = exported(store)
    last = max(r.seq for r in store.ledger)
    store.ledger = [r for r in store.ledger if r.seq <= last - 7]
    store.checkpoints = [c for c in store.checkpoints if c.seq <= last - 7]  # covered up in the store too
    report = verify(store, copies)
    kinds = {p.kind for p in report.problems}
    assert kinds == {TRUNCATED, CHECKPOINT_DELETED}
    truncated = next(p for p in report.problems if p.kind == TRUNCATED)
    assert (truncated.seq, truncated.last_seq) == (last - 6, last)


def test_a_dropped_tail_is_caught_by_the_stored_checkpoint_alone() -> None:
    store = build()
    last = max(r.seq for r in store.ledger)
    store.ledger = [r for r in store.ledger if r.seq <= last - 3]
    assert first(verify(store)) == (TRUNCATED, last - 2)


def test_a_checkpoint_rewritten_without_the_key_is_forged() -> None:
    store = build()
    original = store.checkpoints[1]
    store.checkpoints[1] = Checkpoint(
        original.stream,
        original.seq - 5,
        next(r.chain_hash for r in store.ledger if r.seq == original.seq - 5),
        original.created_at,
        original.bundle_revision,
        original.key_id,
        original.signature,
    )
    report = verify(store)
    assert first(report) == (FORGED_CHECKPOINT, original.seq - 5)


def test_a_checkpoint_signed_by_another_key_is_forged() -> None:
    store = build()
    impostor = Signer(Ed25519PrivateKey.generate())
    c = store.checkpoints[0]
    store.checkpoints[0] = Checkpoint.sign(impostor, c.stream, c.seq, c.chain_hash, c.bundle_revision)
    report = verify(store)
    assert first(report) == (FORGED_CHECKPOINT, c.seq)
    assert "not a trusted key" in report.problems[0].detail


def test_history_rewritten_with_recomputed_hashes_is_caught_by_the_checkpoint() -> None:
    store = build()
    rows = sorted(store.ledger, key=lambda r: r.seq)
    prev = rows[44].chain_hash  # seq 45
    for k in range(45, len(rows)):
        row = rows[k]
        if k == 45:
            row = row._replace(record=row.record.replace("allow", "deny"))
        rows[k] = relinked(row, prev)
        prev = rows[k].chain_hash
    store.ledger = rows
    report = verify(store)
    kind, seq = first(report)
    assert kind == REWRITTEN
    covering = min(c.seq for c in store.checkpoints if c.seq >= 46)
    previous = max(c.seq for c in store.checkpoints if c.seq < 46)
    assert (seq, report.problems[0].last_seq) == (previous + 1, covering)


def test_an_unreadable_exported_copy_is_a_problem() -> None:
    store = build()
    copies = [ExternalCheckpoint("export/bad.json", STREAM, None, "not JSON")]
    assert first(verify(store, copies)) == (FORGED_CHECKPOINT, None)


def test_a_time_window_starts_at_the_checkpoint_before_it() -> None:
    store = build(entries=60, every=10)
    stamp = store.ledger[0].appended_at
    shifted = []
    for row in store.ledger:  # spread the entries over an hour, one minute per 6 entries
        moment = stamp + timedelta(minutes=row.seq // 6)
        shifted.append(relinked(row._replace(appended_at=moment), row.prev_hash))
    prev = shifted[0].prev_hash
    for k, row in enumerate(shifted):
        shifted[k] = relinked(row, prev)
        prev = shifted[k].chain_hash
    store.ledger = shifted
    store.checkpoints = [
        Checkpoint.sign(SIGNER, STREAM, r.seq, r.chain_hash, "rev-1") for r in shifted if r.seq % 10 == 0
    ]
    since = stamp + timedelta(minutes=4)
    until = stamp + timedelta(minutes=6)
    report = verify(store, since=since, until=until)
    assert report.ok, report.problems
    (stream,) = report.streams
    assert (stream.first_seq, stream.last_seq) == (21, 40)

    i = at(store, 5)
    store.ledger[i] = store.ledger[i]._replace(record="{}")
    assert verify(store, since=since, until=until).ok  # outside the window
    assert not verify(store).ok


def test_each_stream_is_verified_on_its_own() -> None:
    store = build()
    other = Ledger(store, SIGNER, checkpoint_entries=5)  # type: ignore[arg-type]
    store.store(other, batch("ai.access", 2, range(12)))
    i = next(k for k, r in enumerate(store.ledger) if r.stream == "ai.access:2" and r.seq == 3)
    store.ledger[i] = store.ledger[i]._replace(record="{}")
    report = verify(store)
    assert [s.ok for s in report.streams] == [False, True]
    assert first(report) == (MODIFIED, 3)
    assert verify(store, stream=STREAM).ok


_TAMPERS = ("modify", "delete", "insert", "swap", "truncate")


@settings(max_examples=40, deadline=None)
@given(tamper=st.sampled_from(_TAMPERS), where=st.integers(min_value=1, max_value=85))
def test_any_single_tamper_is_reported_where_it_happened(tamper: str, where: int) -> None:
    store = build(entries=90, every=20)
    last = max(r.seq for r in store.ledger)
    i = at(store, where)
    if tamper == "modify":
        store.ledger[i] = store.ledger[i]._replace(event_id="someone-else")
    elif tamper == "delete":
        del store.ledger[i]
    elif tamper == "insert":
        store.ledger.insert(i, store.ledger[i]._replace(record_id="forged", chain_hash="f" * 64))
    elif tamper == "swap":
        j = at(store, where + 3)
        store.ledger[i], store.ledger[j] = (
            store.ledger[j]._replace(seq=where),
            store.ledger[i]._replace(seq=where + 3),
        )
    else:
        store.ledger = [r for r in store.ledger if r.seq < where]
    report = verify(store)
    assert not report.ok
    problem = report.problems[0]
    assert problem.seq == where
    expected = {
        "modify": MODIFIED,
        "delete": DELETED,
        "insert": INSERTED,
        "swap": REORDERED,
        "truncate": TRUNCATED,
    }[tamper]
    assert problem.kind == expected
    assert where <= last
