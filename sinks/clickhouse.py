"""ClickHouse through clickhouse-connect: one client API for chDB and HTTP servers.

``connect`` accepts ``chdb:///abs/path`` (embedded, the default), ``chdb://memory``
or ``http(s)://user:pass@host:port/db``; nothing downstream knows which (an embedded
engine starts with the settings of :mod:`sinks.embedded_engine`). Migrations
are numbered SQL files in ``sinks/ddl`` applied once each, in order, at start-up and
recorded in ``vigil_migrations``.

Batches are written as Arrow columns (``insert_arrow``): a batch's rows are turned into
one typed array per column in C, where clickhouse-connect's row insert serialises every
value in Python and asks the server for the table's column types before each insert.
Both travel the same client API, so chDB and a server over HTTP take the same path.

A batch's tables are inserted side by side, each through a client of its own: an insert
costs mostly the engine creating a part (3-15 ms, whatever its rows), and those waits
overlap instead of adding up. Clients on one embedded store share its engine.
A batch's findings and alerts can be stored first, so its alerts leave for the
notifier without waiting for the bulk of its rows.
"""

from __future__ import annotations

import fcntl
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple

import clickhouse_connect
import pyarrow as pa
from clickhouse_connect.driver.client import Client

from alerting.records import AckRow, AlertStateRow, NotificationRow, SilenceRow
from schemas.audit import CheckpointRow, LedgerRow
from schemas.records import AlertRow, DecisionRow, EventRow, FindingRow, RejectedRow
from sinks import embedded_engine

log = logging.getLogger(__name__)

DDL_DIR = Path(__file__).resolve().parent / "ddl"
TABLES: dict[str, type[NamedTuple]] = {
    "events": EventRow,
    "decisions": DecisionRow,
    "findings": FindingRow,
    "alerts": AlertRow,
    "rejected": RejectedRow,
    "audit_ledger": LedgerRow,
    "audit_checkpoints": CheckpointRow,
    "alert_states": AlertStateRow,
    "silences": SilenceRow,
    "alert_acks": AckRow,
    "notifications": NotificationRow,
}
ALERTING_TABLES = ("findings", "alerts")
"""Stored before a batch's other tables when the caller waits to send its alerts."""
_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


class StoreLockedError(RuntimeError):
    """Another process owns this embedded store (chDB allows one per directory)."""


CONNECT_TIMEOUT_SECONDS = 10
READ_TIMEOUT_SECONDS = 120
"""A server that accepts connections but never answers fails start-up with a clear
error after this long, instead of hanging it; also the limit for any one response."""


class StoreUnavailableError(RuntimeError):
    """The ClickHouse server did not answer; the message names it (without its password)."""


def connect(url: str, *, already_owned: bool = False) -> Client:
    """Open a client. ``already_owned``: this process has the embedded store open."""
    if not url.startswith("chdb://"):
        try:
            return clickhouse_connect.get_client(
                dsn=url, connect_timeout=CONNECT_TIMEOUT_SECONDS, send_receive_timeout=READ_TIMEOUT_SECONDS
            )
        except Exception as error:
            raise StoreUnavailableError(
                f"ClickHouse at {redact(url)} did not answer: {redact(str(error))}"
            ) from None
    if url != "chdb://memory" and not already_owned:
        directory = Path(url.removeprefix("chdb://"))
        private_directory(directory)
        if is_locked(directory):
            raise StoreLockedError(f"{url} is in use by another process")
    return clickhouse_connect.get_client(dsn=url, chdb_options=embedded_engine.chdb_options())


def private_directory(directory: Path) -> None:
    """Create the store's directory, and any missing parent, readable by its owner only.

    The store holds every event and decision; other local users have no business
    reading it. Existing directories keep the mode their owner gave them.
    """
    missing = [d for d in (directory, *directory.parents) if not d.exists()]
    for path in reversed(missing):
        path.mkdir(mode=0o700, exist_ok=True)


def is_locked(directory: Path) -> bool:
    """Whether another process owns this chDB directory.

    The engine holds an exclusive lock on ``<dir>/status`` while open. Probing it
    first gives a clear answer instead of the engine's generic start-up error.
    """
    status = directory / "status"
    if not status.exists():
        return False
    with status.open("rb") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False


def redact(url: str) -> str:
    """The URL without its password, for logs."""
    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)


def migrate(client: Client, ddl_dir: Path = DDL_DIR) -> list[str]:
    """Apply pending migrations in order; return the names applied."""
    client.command(
        "CREATE TABLE IF NOT EXISTS vigil_migrations "
        "(name String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) "
        "ENGINE = MergeTree ORDER BY name"
    )
    done = {row[0] for row in client.query("SELECT name FROM vigil_migrations").result_rows}
    applied = []
    for path in sorted(ddl_dir.glob("*.sql")):
        if not _MIGRATION_NAME.match(path.name):
            raise ValueError(f"{path.name}: migrations are named NNNN_words.sql")
        if path.name in done:
            continue
        for statement in _statements(path.read_text(encoding="utf-8")):
            client.command(statement)
        client.insert("vigil_migrations", [[path.name]], column_names=["name"])
        applied.append(path.name)
        log.info("applied migration %s", path.name)
    return applied


def _statements(sql: str) -> list[str]:
    without_comments = "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))
    return [s.strip() for s in without_comments.split(";") if s.strip()]


class ClickHouseStore:
    """Batched writes of pipeline results; ``write`` raises if anything was not stored.

    With ``connect`` (opening another client on the same store), every table gets a
    client of its own and ``write`` inserts its tables concurrently; without it, one
    after the other through ``client``. Either way ``write`` returns only when every
    insert has ended, so a retry never races an insert still running.
    """

    def __init__(self, client: Client, connect: Callable[[], Client] | None = None) -> None:
        self.client = client
        self._connect = connect
        self._writers: dict[str, ColumnWriter] = {}
        self._inserts = (
            ThreadPoolExecutor(max_workers=len(TABLES), thread_name_prefix="vigil-insert")
            if connect is not None
            else None
        )

    def write(
        self, tables: Mapping[str, Sequence[Any]], alerts_stored: Callable[[], None] | None = None
    ) -> None:
        """Insert every table; ``alerts_stored`` is called once the batch's findings and
        alerts are, before its other tables, when there are alerts to send."""
        if alerts_stored is None or not tables.get("alerts"):
            self._insert(tables)
            return
        first = {table: tables[table] for table in ALERTING_TABLES if table in tables}
        self._insert(first)
        alerts_stored()
        self._insert({table: rows for table, rows in tables.items() if table not in first})

    def _insert(self, tables: Mapping[str, Sequence[Any]]) -> None:
        filled = [(self._writer(table), rows) for table, rows in tables.items() if rows]
        if self._inserts is None or len(filled) < 2:
            for writer, rows in filled:
                writer.insert(rows)
            return
        # Rows become Arrow here, on the caller's thread (Python work, under the interpreter
        # lock either way); only the engine's part of each insert runs side by side.
        batches = [(writer, writer.arrow(rows)) for writer, rows in filled]
        inserts = [self._inserts.submit(writer.send, batch) for writer, batch in batches]
        failures = [error for error in (insert.exception() for insert in inserts) if error is not None]
        if failures:
            raise failures[0]

    def _writer(self, table: str) -> ColumnWriter:
        writer = self._writers.get(table)
        if writer is None:
            client = self.client if self._connect is None else self._connect()
            try:
                writer = ColumnWriter.for_table(client, table, TABLES[table]._fields)
            except BaseException:
                if client is not self.client:
                    client.close()
                raise
            self._writers[table] = writer
        return writer

    def close(self) -> None:
        if self._inserts is not None:
            self._inserts.shutdown(wait=True)
        for writer in self._writers.values():
            if writer.client is not self.client:
                writer.client.close()
        self.client.close()


_SCALAR_ARROW_TYPES: dict[str, pa.DataType] = {
    "String": pa.string(),
    "Bool": pa.bool_(),
    "Float64": pa.float64(),
    "Int32": pa.int32(),
    "Int64": pa.int64(),
    "UInt32": pa.uint32(),
    "UInt64": pa.uint64(),
    "DateTime64(3, 'UTC')": pa.timestamp("ms", tz="UTC"),
}
_WRAPPED = re.compile(r"^(\w+)\((.*)\)$")


def arrow_type(clickhouse_type: str) -> pa.DataType:
    """The Arrow type ClickHouse reads into a column of ``clickhouse_type``.

    Only the types the migrations use; anything else is a ``ValueError``, so a new
    column type fails at the first write instead of being converted by guesswork.
    """
    scalar = _SCALAR_ARROW_TYPES.get(clickhouse_type)
    if scalar is not None:
        return scalar
    match = _WRAPPED.match(clickhouse_type)
    if match is not None:
        name, inner = match.groups()
        if name == "LowCardinality":
            return arrow_type(inner)
        if name == "Array":
            return pa.list_(arrow_type(inner))
        if name == "Map":
            key, value = _split_pair(inner)
            return pa.map_(arrow_type(key), arrow_type(value))
    raise ValueError(f"no Arrow mapping for ClickHouse type {clickhouse_type}")


def _split_pair(text: str) -> tuple[str, str]:
    """``K, V`` of a ``Map(K, V)``, where K and V may themselves contain commas."""
    depth = 0
    for position, char in enumerate(text):
        depth += char == "("
        depth -= char == ")"
        if char == "," and depth == 0:
            return text[:position].strip(), text[position + 1 :].strip()
    raise ValueError(f"not a key, value pair: {text}")


class ColumnWriter:
    """Inserts one table's rows as an Arrow table of the table's own column types.

    The schema comes from ``DESCRIBE TABLE`` once, at the table's first write; the
    migrations run before any write, so it cannot change under a running process.
    """

    def __init__(self, client: Client, table: str, schema: pa.Schema) -> None:
        self.client = client
        self.table = table
        self.schema = schema

    @classmethod
    def for_table(cls, client: Client, table: str, columns: Sequence[str]) -> ColumnWriter:
        described = client.query(f"DESCRIBE TABLE {table}").named_results()
        types = {str(row["name"]): str(row["type"]) for row in described}
        missing = [c for c in columns if c not in types]
        if missing:
            raise ValueError(f"table {table} has no column(s) {', '.join(missing)}: a migration is missing")
        return cls(client, table, pa.schema([(c, arrow_type(types[c])) for c in columns]))

    def insert(self, rows: Sequence[Sequence[Any]]) -> None:
        self.send(self.arrow(rows))

    def arrow(self, rows: Sequence[Sequence[Any]]) -> pa.Table:
        columns = zip(*rows, strict=True)
        arrays = [pa.array(values, type=f.type) for f, values in zip(self.schema, columns, strict=True)]
        return pa.Table.from_arrays(arrays, schema=self.schema)

    def send(self, batch: pa.Table) -> None:
        self.client.insert_arrow(self.table, batch)
