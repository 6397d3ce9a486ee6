"""The notifier's durable state: one SQLite database, written in transactions.

Everything a restarted (or standby) notifier needs to carry on where the last one
stopped lives here, and every change that belongs together is committed together:

- ``alerts``, ``groups`` and ``dispatcher``: the dispatcher's open alerts, its groups
  with their timers and what each group's last notification showed, and the acks;
- ``silences``: the silences in force;
- ``positions``: for each ``ai.alerts`` partition, the next offset not yet applied,
  so a record redelivered after a crash is recognised and skipped;
- ``outbox``: notifications owed, per receiver integration, in order;
- ``receivers``: what an integration keeps between deliveries (the Slack thread of
  each group), saved in the transaction that removes the delivered notification;
- ``records``: rows owed to the ClickHouse tables (alert states, notifications,
  silences, acks), removed once written.

Applying a batch of alert rows (state, owed notifications, positions) is one
transaction, so a ``kill -9`` leaves either all of it or none of it: the records of
a lost transaction are read again from Kafka, whose offsets never run ahead of
``positions``. Each thread uses its own connection (SQLite serialises writers);
``path=None`` keeps the database in memory, shared by the threads of the process.
"""

from __future__ import annotations

import fcntl
import itertools
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

SCHEMA = """
CREATE TABLE IF NOT EXISTS positions (
    topic TEXT NOT NULL, partition INTEGER NOT NULL, next_offset INTEGER NOT NULL,
    PRIMARY KEY (topic, partition));
CREATE TABLE IF NOT EXISTS alerts (alert_id TEXT PRIMARY KEY, doc BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS groups (group_id TEXT PRIMARY KEY, doc BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS dispatcher (name TEXT PRIMARY KEY, doc BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS silences (silence_id TEXT PRIMARY KEY, doc BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT, integration TEXT NOT NULL,
    notification_id TEXT NOT NULL, doc BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS outbox_by_integration ON outbox (integration, id);
CREATE TABLE IF NOT EXISTS receivers (integration TEXT PRIMARY KEY, doc BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS records (
    id INTEGER PRIMARY KEY AUTOINCREMENT, tbl TEXT NOT NULL, doc BLOB NOT NULL);
"""

STATE_FILE = "notifier.sqlite"
LOCK_FILE = "notifier.lock"
_memory_names = itertools.count()


class StateLockedError(RuntimeError):
    """Another process owns the state directory."""


class StateLock:
    """An exclusive ``flock`` on a state directory: one alert manager per state at a time.

    ``vigil notifier`` waits for it (a standby); an embedded run refuses to start
    while a notifier holds it. The kernel releases it when its holder dies, even by
    ``kill -9``.
    """

    def __init__(self, state_dir: Path) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        self.path = state_dir / LOCK_FILE
        self._fd: int | None = None

    def acquire(self, on_wait: Callable[[], None] | None = None) -> None:
        """Take the lock; if another process holds it, call ``on_wait`` and block until it is
        free, or without ``on_wait`` raise :class:`StateLockedError`."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is None:
                os.close(fd)
                raise StateLockedError(f"{self.path.parent} is in use by a running notifier") from None
            on_wait()
            fcntl.flock(fd, fcntl.LOCK_EX)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


class StateStore:
    def __init__(self, path: Path | None = None) -> None:
        if path is None:
            self._target = f"file:vigil-notifier-{next(_memory_names)}?mode=memory&cache=shared"
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._target = path.resolve().as_uri()
        self.path = path
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        connection = self._connection()  # also keeps an in-memory database alive
        connection.executescript(SCHEMA)

    @classmethod
    def in_directory(cls, state_dir: Path | None) -> StateStore:
        return cls(state_dir / STATE_FILE if state_dir is not None else None)

    def _connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(
                self._target, uri=True, isolation_level=None, timeout=30.0, check_same_thread=False
            )
            if self.path is not None:
                connection.execute("PRAGMA journal_mode=WAL")
            self._local.connection = connection
            self._local.depth = 0
            self._local.synchronous = ""
            with self._lock:
                self._connections.append(connection)
        return connection

    @contextmanager
    def transaction(self, durable: bool = False) -> Iterator[sqlite3.Connection]:
        """One atomic unit of change; nested uses join the outer transaction.

        Every commit survives the process being killed (WAL). A ``durable`` one also
        survives the machine losing power (synced to disk, and everything committed
        before it): the transactions that advance consumed offsets are, so Kafka never
        moves past a state the disk may not hold. The others skip the sync, which
        costs tens of milliseconds on a busy disk, for every tick and delivery.
        """
        connection = self._connection()
        outer = self._local.depth == 0
        if outer:
            synchronous = "FULL" if durable else "NORMAL"
            if self.path is not None and self._local.synchronous != synchronous:
                connection.execute(f"PRAGMA synchronous={synchronous}")
                self._local.synchronous = synchronous
            connection.execute("BEGIN IMMEDIATE")
        self._local.depth += 1
        try:
            yield connection
        except BaseException:
            self._local.depth -= 1
            if outer:
                connection.execute("ROLLBACK")
            raise
        self._local.depth -= 1
        if outer:
            connection.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            connections, self._connections = self._connections, []
        for connection in connections:
            connection.close()
        self._local = threading.local()

    # --- keyed documents ------------------------------------------------------------------

    def documents(self, table: str) -> dict[str, Any]:
        key = _KEYS[table]
        rows = self._connection().execute(f"SELECT {key}, doc FROM {table}").fetchall()
        return {name: orjson.loads(doc) for name, doc in rows}

    def put_documents(self, table: str, documents: dict[str, bytes], removed: set[str]) -> None:
        key = _KEYS[table]
        with self.transaction() as connection:
            if removed:
                connection.executemany(f"DELETE FROM {table} WHERE {key} = ?", [(k,) for k in removed])
            if documents:
                connection.executemany(
                    f"INSERT OR REPLACE INTO {table} ({key}, doc) VALUES (?, ?)",
                    list(documents.items()),
                )

    # --- positions --------------------------------------------------------------------------

    def positions(self) -> dict[tuple[str, int], int]:
        rows = self._connection().execute("SELECT topic, partition, next_offset FROM positions").fetchall()
        return {(topic, partition): offset for topic, partition, offset in rows}

    def advance(self, positions: dict[tuple[str, int], int]) -> None:
        with self.transaction() as connection:
            connection.executemany(
                "INSERT INTO positions (topic, partition, next_offset) VALUES (?, ?, ?) "
                "ON CONFLICT (topic, partition) "
                "DO UPDATE SET next_offset = max(next_offset, excluded.next_offset)",
                [(topic, partition, offset) for (topic, partition), offset in positions.items()],
            )

    # --- outbox -----------------------------------------------------------------------------

    def owed(self, integration: str) -> list[tuple[int, bytes]]:
        return (
            self._connection()
            .execute("SELECT id, doc FROM outbox WHERE integration = ? ORDER BY id", (integration,))
            .fetchall()
        )

    def owe(self, integration: str, notification_id: str, doc: bytes) -> int:
        with self.transaction() as connection:
            cursor = connection.execute(
                "INSERT INTO outbox (integration, notification_id, doc) VALUES (?, ?, ?)",
                (integration, notification_id, doc),
            )
            return int(cursor.lastrowid or 0)

    def replace_owed(self, row_id: int, doc: bytes) -> None:
        with self.transaction() as connection:
            connection.execute("UPDATE outbox SET doc = ? WHERE id = ?", (doc, row_id))

    def settle(self, row_id: int, integration: str, receiver_state: dict[str, Any] | None) -> None:
        """A notification delivered (or given up): gone from the outbox with the receiver's new state."""
        with self.transaction() as connection:
            connection.execute("DELETE FROM outbox WHERE id = ?", (row_id,))
            if receiver_state is not None:
                connection.execute(
                    "INSERT OR REPLACE INTO receivers (integration, doc) VALUES (?, ?)",
                    (integration, orjson.dumps(receiver_state)),
                )

    def receiver_state(self, integration: str) -> dict[str, Any] | None:
        row = (
            self._connection()
            .execute("SELECT doc FROM receivers WHERE integration = ?", (integration,))
            .fetchone()
        )
        return orjson.loads(row[0]) if row else None

    # --- rows owed to ClickHouse ------------------------------------------------------------

    def add_records(self, table: str, docs: list[bytes]) -> None:
        with self.transaction() as connection:
            connection.executemany("INSERT INTO records (tbl, doc) VALUES (?, ?)", [(table, d) for d in docs])

    def records(self, limit: int) -> list[tuple[int, str, bytes]]:
        return (
            self._connection()
            .execute("SELECT id, tbl, doc FROM records ORDER BY id LIMIT ?", (limit,))
            .fetchall()
        )

    def drop_records(self, up_to_id: int) -> None:
        with self.transaction() as connection:
            connection.execute("DELETE FROM records WHERE id <= ?", (up_to_id,))


_KEYS = {"alerts": "alert_id", "groups": "group_id", "dispatcher": "name", "silences": "silence_id"}
