"""The audited store: one write per batch, nothing half-committed, checkpoints owed by time."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, Literal, NamedTuple, get_origin, get_type_hints

import pyarrow as pa
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.export import CheckpointExports, DirectoryExport
from audit.keys import Signer
from audit.ledger import Ledger
from audit.store import AuditedStore
from sinks.clickhouse import TABLES
from tests.unit.audit.memory import MemoryStore, batch

SIGNER = Signer(Ed25519PrivateKey.generate())


class Client:
    """clickhouse-connect's Arrow insert, landing in a ``MemoryStore``; can fail on one table."""

    def __init__(self, memory: MemoryStore) -> None:
        self.memory = memory
        self.inserted: list[str] = []
        self.fail_on: str | None = None
        self.closed = False

    def query(self, sql: str) -> Described:
        return Described(TABLES[sql.removeprefix("DESCRIBE TABLE ")])

    def insert_arrow(self, table: str, arrow_table: pa.Table) -> None:
        if table == self.fail_on:
            raise ConnectionError(f"{table}: connection reset")
        self.inserted.append(table)
        record = TABLES[table]
        self.memory.write({table: [record(**row) for row in arrow_table.to_pylist()]})

    def close(self) -> None:
        self.closed = True


class Described:
    """``DESCRIBE TABLE`` of a record type, the column types read from its annotations."""

    TYPES: ClassVar[dict[object, str]] = {
        str: "String",
        int: "Int64",
        bool: "Bool",
        datetime: "DateTime64(3, 'UTC')",
        list[str]: "Array(String)",
        dict[str, float]: "Map(String, Float64)",
    }

    def __init__(self, record: type[NamedTuple]) -> None:
        self.record = record

    def named_results(self) -> list[dict[str, str]]:
        return [{"name": n, "type": self._type(t)} for n, t in get_type_hints(self.record).items()]

    def _type(self, annotation: object) -> str:
        return "String" if get_origin(annotation) is Literal else self.TYPES[annotation]


def _store(tmp_path: Path, **options: Any) -> tuple[AuditedStore, Client, MemoryStore]:
    memory = MemoryStore()
    client = Client(memory)
    ledger = Ledger(memory, SIGNER, **options)  # type: ignore[arg-type]
    store = AuditedStore(client, ledger, CheckpointExports(DirectoryExport(tmp_path / "export")))  # type: ignore[arg-type]
    return store, client, memory


def test_the_ledger_is_inserted_after_the_tables_of_its_batch(tmp_path: Path) -> None:
    store, client, _ = _store(tmp_path, checkpoint_entries=3)
    store.write(batch("ai.access", 0, [1, 2, 3]))
    assert client.inserted == ["events", "decisions", "audit_ledger", "audit_checkpoints"]
    assert [c.seq for c in DirectoryExport(tmp_path / "export").read() for c in [c.checkpoint] if c] == [3]
    assert [c.seq for c in store.exports.take_outbox()] == [3]


def test_alerts_can_leave_once_findings_and_alerts_are_stored_before_the_rest(tmp_path: Path) -> None:
    store, client, _ = _store(tmp_path, checkpoint_entries=3)
    seen: list[list[str]] = []
    tables = batch("ai.access", 0, [1, 2, 3], denied=[2], alerted=[2])
    store.write(tables, lambda: seen.append(list(client.inserted)))
    assert seen == [["findings", "alerts"]]
    assert client.inserted == [
        "findings",
        "alerts",
        "events",
        "decisions",
        "audit_ledger",
        "audit_checkpoints",
    ]


def test_a_batch_without_alerts_is_stored_in_one_go_and_the_ledger_still_last(tmp_path: Path) -> None:
    store, client, _ = _store(tmp_path)
    seen: list[list[str]] = []
    store.write(batch("ai.access", 0, [1, 2], denied=[2]), lambda: seen.append(list(client.inserted)))
    assert seen == []
    assert client.inserted == ["events", "decisions", "findings", "audit_ledger"]


def test_a_write_that_fails_part_way_is_retried_without_duplicates(tmp_path: Path) -> None:
    store, client, memory = _store(tmp_path, checkpoint_entries=2)
    client.fail_on = "audit_checkpoints"  # the ledger rows land, the checkpoint does not
    tables = batch("ai.access", 0, [1, 2])
    with pytest.raises(ConnectionError):
        store.write(tables)
    client.fail_on = None
    store.write(tables)  # the driver's retry of the same batch
    assert [r.seq for r in memory.ledger] == [1, 2]
    assert [c.seq for c in memory.checkpoints] == [2]
    assert len(memory.tables["decisions"]) == 2  # the retry did not store the rows again


def test_closing_signs_what_is_uncovered_and_closes_the_client(tmp_path: Path) -> None:
    store, client, memory = _store(tmp_path, checkpoint_entries=100)
    store.write(batch("ai.access", 0, [1, 2]))
    store.close()
    assert [c.seq for c in memory.checkpoints] == [2]
    assert client.closed


def test_closing_still_closes_the_client_when_the_final_checkpoint_fails(tmp_path: Path) -> None:
    store, client, memory = _store(tmp_path, checkpoint_entries=100)
    store.write(batch("ai.access", 0, [1]))
    client.fail_on = "audit_checkpoints"
    store.close()
    assert client.closed
    assert memory.checkpoints == []


def test_the_timer_signs_an_idle_stream(tmp_path: Path) -> None:
    store, _, memory = _store(tmp_path, checkpoint_entries=100, checkpoint_seconds=0.3)
    store.start()
    try:
        store.write(batch("ai.access", 0, [1, 2]))
        deadline = time.monotonic() + 10
        while not memory.checkpoints and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [c.seq for c in memory.checkpoints] == [2]
    finally:
        store.close()
    assert [c.seq for c in memory.checkpoints] == [2]  # nothing left to sign at close
