"""The ledger: streams per partition, chained entries, replay dedupe, recovery, cadence."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.canonical import canonical_record, chain_hash, genesis, record_hash, timestamp
from audit.keys import Signer, TrustedKeys
from audit.ledger import LEDGER_TABLE, Ledger, LedgerError, record_key
from tests.unit.audit.memory import MemoryStore, batch


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def signer() -> Signer:
    return Signer(Ed25519PrivateKey.generate())


def ledger_for(store: MemoryStore, signer: Signer, **options: object) -> Ledger:
    return Ledger(store, signer, **options)  # type: ignore[arg-type]


def chain_holds(store: MemoryStore, stream: str) -> bool:
    prev = genesis(stream)
    rows = sorted((r for r in store.ledger if r.stream == stream), key=lambda r: r.seq)
    for expected_seq, row in enumerate(rows, start=1):
        recomputed = chain_hash(
            prev,
            stream,
            row.kind,
            row.record_id,
            row.event_id,
            row.source_offset,
            record_hash(row.record),
            timestamp(row.appended_at),
        )
        if row.seq != expected_seq or row.prev_hash != prev or row.chain_hash != recomputed:
            return False
        prev = row.chain_hash
    return True


def test_each_partition_is_its_own_stream_in_source_order(signer: Signer) -> None:
    store = MemoryStore()
    ledger = ledger_for(store, signer)
    tables = batch("ai.inference", 0, [10, 11, 12], denied=[11], alerted=[11])
    other = batch("ai.inference", 3, [7, 8])
    merged = {name: tables[name] + other[name] for name in tables}
    store.store(ledger, merged)

    zero = [(r.seq, r.kind, r.source_offset) for r in store.ledger if r.stream == "ai.inference:0"]
    assert zero == [
        (1, "decision", 10),
        (2, "decision", 11),
        (3, "finding", 11),
        (4, "alert", 11),
        (5, "decision", 12),
    ]
    assert [r.seq for r in store.ledger if r.stream == "ai.inference:3"] == [1, 2]
    assert chain_holds(store, "ai.inference:0")
    assert chain_holds(store, "ai.inference:3")


def test_an_entry_holds_the_record_exactly_as_the_table_row(signer: Signer) -> None:
    store = MemoryStore()
    tables = batch("ai.access", 1, [5], denied=[5])
    store.store(ledger_for(store, signer), tables)
    decision = next(r for r in store.ledger if r.kind == "decision")
    assert decision.record == canonical_record(store.tables["decisions"][0])
    assert decision.record_hash == record_hash(decision.record)
    assert decision.record_id == decision.event_id == "ai.access-1-5"


def test_a_replayed_batch_adds_no_entries_and_no_table_rows(signer: Signer) -> None:
    store = MemoryStore()
    ledger = ledger_for(store, signer)
    store.store(ledger, batch("ai.training", 0, range(20), denied=[3], alerted=[3]))
    entries, decisions = len(store.ledger), len(store.tables["decisions"])

    replay = store.store(ledger, batch("ai.training", 0, range(15, 25)))

    assert replay.replayed == 5
    assert len(store.ledger) == entries + 5
    assert len(store.tables["decisions"]) == decisions + 5
    assert chain_holds(store, "ai.training:0")


def test_a_failed_write_leaves_no_trace_and_the_retry_writes_everything_once(signer: Signer) -> None:
    store = MemoryStore()
    ledger = ledger_for(store, signer, checkpoint_entries=5)
    store.store(ledger, batch("ai.inference", 0, [1, 2]))
    store.fail_after = LEDGER_TABLE  # tables inserted, the ledger rows not
    tables = batch("ai.inference", 0, [3, 4, 5])
    with pytest.raises(ConnectionError):
        store.store(ledger, tables)
    assert len(store.ledger) == 2
    store.fail_after = None
    store.store(ledger, tables)
    assert [r.seq for r in store.ledger] == [1, 2, 3, 4, 5]
    assert chain_holds(store, "ai.inference:0")


def test_ledger_rows_stored_but_checkpoint_failed_is_not_written_twice(signer: Signer) -> None:
    store = MemoryStore()
    ledger = ledger_for(store, signer, checkpoint_entries=3)
    store.fail_after = "audit_checkpoints"
    tables = batch("ai.inference", 0, [1, 2, 3])
    with pytest.raises(ConnectionError):
        store.store(ledger, tables)
    assert len(store.ledger) == 3  # the ledger insert went through before the failure
    store.fail_after = None
    retry = store.store(ledger, tables)
    assert retry.replayed == 3
    assert len(store.ledger) == 3
    assert [c.seq for c in store.checkpoints] == [3]


def test_a_restarted_ledger_resumes_the_chain_from_the_store(signer: Signer) -> None:
    store = MemoryStore()
    store.store(ledger_for(store, signer), batch("ai.inference", 2, range(10), denied=[4]))
    restarted = ledger_for(store, signer)  # a new process: nothing in memory
    replay = store.store(restarted, batch("ai.inference", 2, range(5, 14)))
    assert replay.replayed == 5
    assert [r.seq for r in store.ledger] == list(range(1, 16))
    assert len({(r.kind, r.record_id) for r in store.ledger}) == len(store.ledger)
    assert chain_holds(store, "ai.inference:2")


def test_records_whose_event_is_not_in_the_batch_are_refused(signer: Signer) -> None:
    store = MemoryStore()
    tables = batch("ai.inference", 0, [1])
    tables["events"] = []
    with pytest.raises(LedgerError, match=r"ai\.inference-0-1"):
        ledger_for(store, signer).prepare(tables)


def test_batches_without_records_touch_nothing(signer: Signer) -> None:
    store = MemoryStore()
    prepared = store.store(ledger_for(store, signer), {"rejected": [object()]})
    assert prepared.entries == 0
    assert store.ledger == []
    assert LEDGER_TABLE not in prepared.tables


def test_checkpoints_every_n_entries_are_signed_heads(signer: Signer) -> None:
    store = MemoryStore()
    ledger = ledger_for(store, signer, checkpoint_entries=10)
    for start in range(0, 40, 4):
        store.store(ledger, batch("ai.access", 0, range(start, start + 4)))
    assert [c.seq for c in store.checkpoints] == [12, 24, 36]
    keys = TrustedKeys([signer.public_key])
    for checkpoint in store.checkpoints:
        row = next(r for r in store.ledger if r.seq == checkpoint.seq)
        assert checkpoint.chain_hash == row.chain_hash
        assert checkpoint.bundle_revision == "rev-1"
        assert checkpoint.verify(keys)


def test_an_idle_stream_is_checkpointed_once_its_oldest_entry_is_old_enough(signer: Signer) -> None:
    store = MemoryStore()
    clock = Clock()
    ledger = ledger_for(store, signer, checkpoint_entries=1000, checkpoint_seconds=60, clock=clock)
    store.store(ledger, batch("ai.access", 0, [1, 2]))
    clock.now += 59
    assert ledger.due().checkpoints == []
    clock.now += 1
    due = ledger.due()
    assert [(c.stream, c.seq) for c in due.checkpoints] == [("ai.access:0", 2)]
    store.write(due.tables)
    ledger.commit(due)
    clock.now += 600
    assert ledger.due().checkpoints == []  # nothing new since


def test_closing_signs_every_uncovered_stream(signer: Signer) -> None:
    store = MemoryStore()
    ledger = ledger_for(store, signer, checkpoint_entries=1000)
    store.store(ledger, batch("ai.access", 0, [1]))
    store.store(ledger, batch("ai.access", 1, [1, 2]))
    closing = ledger.closing()
    assert sorted((c.stream, c.seq) for c in closing.checkpoints) == [("ai.access:0", 1), ("ai.access:1", 2)]


def test_recovery_re_exports_the_latest_checkpoint(signer: Signer) -> None:
    store = MemoryStore()
    store.store(ledger_for(store, signer, checkpoint_entries=2), batch("ai.access", 0, [1, 2]))
    prepared = store.store(ledger_for(store, signer), batch("ai.access", 0, [3]))
    assert [(c.stream, c.seq) for c in prepared.recovered] == [("ai.access:0", 2)]


def test_a_shared_store_rereads_a_stream_another_worker_extended(signer: Signer) -> None:
    store = MemoryStore()
    mine = ledger_for(store, signer, shared_store=True)
    theirs = ledger_for(store, signer, shared_store=True)
    store.store(mine, batch("ai.inference", 1, [1, 2]))
    store.store(theirs, batch("ai.inference", 1, [3, 4]))  # the partition moved to them
    store.store(mine, batch("ai.inference", 1, [5]))  # and came back
    assert [r.seq for r in store.ledger] == [1, 2, 3, 4, 5]
    assert chain_holds(store, "ai.inference:1")


def test_the_replay_window_is_bounded(signer: Signer) -> None:
    store = MemoryStore()
    ledger = ledger_for(store, signer, window=5)
    store.store(ledger, batch("ai.access", 0, range(10)))
    recent = ledger._recent["ai.access:0"]
    assert len(recent) == 5
    newest, oldest = store.ledger[-1], store.ledger[0]
    assert record_key("decision", newest.record_id, newest.record_hash) in recent
    assert record_key("decision", oldest.record_id, oldest.record_hash) not in recent


def test_a_new_version_of_a_record_is_entered_and_stored_an_identical_one_is_not(signer: Signer) -> None:
    store = MemoryStore()
    ledger = ledger_for(store, signer)
    first = batch("ai.access", 0, [1], denied=[1], alerted=[1])
    store.store(ledger, first)
    alert = first["alerts"][0]
    update = batch("ai.access", 0, [2])
    update["events"] += first["events"]
    update["alerts"] = [alert._replace(occurrences=7), alert]  # the running count moved on
    store.store(ledger, update)
    alerts = [r for r in store.ledger if r.kind == "alert"]
    assert [r.record_id for r in alerts] == [alert.alert_id, alert.alert_id]
    assert [a.occurrences for a in store.tables["alerts"]] == [1, 7]
