"""A batch's tables go in side by side, and ``write`` answers for all of them."""

from __future__ import annotations

import threading
import time

import pyarrow as pa
import pytest

from sinks.clickhouse import TABLES, ClickHouseStore
from tests.unit.audit.memory import batch
from tests.unit.audit.test_store import Described


class Client:
    """One connection: records its inserts; ``slow`` tables take a while, ``broken`` fail."""

    def __init__(self, log: list[tuple[str, str, str]], slow: str = "", broken: str = "") -> None:
        self.log = log
        self.slow = slow
        self.broken = broken
        self.closed = False

    def query(self, sql: str) -> Described:
        return Described(TABLES[sql.removeprefix("DESCRIBE TABLE ")])

    def insert_arrow(self, table: str, _rows: pa.Table) -> None:
        self.log.append(("start", table, threading.current_thread().name))
        if table == self.slow:
            time.sleep(0.3)
        if table == self.broken:
            raise ConnectionError(f"{table}: connection reset")
        self.log.append(("end", table, threading.current_thread().name))

    def close(self) -> None:
        self.closed = True


def _store(log: list[tuple[str, str, str]], **faults: str) -> tuple[ClickHouseStore, list[Client]]:
    opened: list[Client] = []

    def connect() -> Client:
        opened.append(Client(log, **faults))
        return opened[-1]

    return ClickHouseStore(Client(log), connect), opened  # type: ignore[arg-type]


def test_tables_are_inserted_at_once_each_through_its_own_client() -> None:
    log: list[tuple[str, str, str]] = []
    store, opened = _store(log, slow="events")
    store.write(batch("ai.access", 0, [1, 2], denied=[2]))
    starts = [table for step, table, _ in log if step == "start"]
    assert sorted(starts) == ["decisions", "events", "findings"]
    assert log.index(("end", "events", _thread(log, "events"))) > max(
        log.index(e) for e in log if e[0] == "start"
    ), "the other tables waited for the slow one"
    assert len(opened) == 3
    store.close()
    assert all(client.closed for client in opened)


def test_a_failed_table_is_raised_only_after_every_other_insert_ended() -> None:
    log: list[tuple[str, str, str]] = []
    store, _ = _store(log, slow="events", broken="decisions")
    with pytest.raises(ConnectionError, match="decisions"):
        store.write(batch("ai.access", 0, [1, 2], denied=[2]))
    assert ("end", "events", _thread(log, "events")) in log, "write returned while events was still inserting"
    store.close()


def _thread(log: list[tuple[str, str, str]], table: str) -> str:
    return next(thread for step, name, thread in log if step == "start" and name == table)
