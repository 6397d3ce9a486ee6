"""ClickHouse through clickhouse-connect: one client API for chDB and HTTP servers.

``connect`` accepts ``chdb:///abs/path`` (embedded, the default), ``chdb://memory``
or ``http(s)://user:pass@host:port/db``; nothing downstream knows which. Migrations
are numbered SQL files in ``sinks/ddl`` applied once each, in order, at start-up and
recorded in ``vigil_migrations``.
"""

from __future__ import annotations

import fcntl
import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from alerting.records import AckRow, AlertStateRow, NotificationRow, SilenceRow
from audit.records import CheckpointRow, LedgerRow
from schemas.records import AlertRow, DecisionRow, EventRow, FindingRow, RejectedRow

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
_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


class StoreLockedError(RuntimeError):
    """Another process owns this embedded store (chDB allows one per directory)."""


def connect(url: str, *, already_owned: bool = False) -> Client:
    """Open a client. ``already_owned``: this process has the embedded store open."""
    if url.startswith("chdb://") and url != "chdb://memory" and not already_owned:
        directory = Path(url.removeprefix("chdb://"))
        directory.mkdir(parents=True, exist_ok=True)
        if is_locked(directory):
            raise StoreLockedError(f"{url} is in use by another process")
    return clickhouse_connect.get_client(dsn=url)


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
    """Batched writes of pipeline results; ``write`` raises if anything was not stored."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def write(self, tables: dict[str, Sequence[Any]]) -> None:
        for table, rows in tables.items():
            if rows:
                self.client.insert(table, rows, column_names=list(TABLES[table]._fields))

    def close(self) -> None:
        self.client.close()
