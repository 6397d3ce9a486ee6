"""Reading the audit tables for verification: streamed in order, never loaded whole.

Two ways in: a clickhouse-connect client (a server, or an embedded store nobody
else has open), which streams blocks; or the read-only query server of the process
that owns an embedded store, paged by sequence-number ranges. Both yield the same
plain tuples (``Entry``), cheapest for the verifier's inner loop.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import orjson
from clickhouse_connect.driver.client import Client

from audit.canonical import timestamp
from audit.checkpoint import Checkpoint
from sinks.query_server import query_remote

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

ENTRY_COLUMNS = (
    "seq, kind, record_id, event_id, source_offset, record, record_hash, prev_hash, chain_hash, "
    "toUnixTimestamp64Milli(appended_at)"
)
CHECKPOINT_COLUMNS = "stream, seq, chain_hash, created_at, bundle_revision, key_id, signature"


class Entry(NamedTuple):
    """One ``audit_ledger`` row as the verifier reads it; ``appended_at`` already formatted."""

    seq: int
    kind: str
    record_id: str
    event_id: str
    source_offset: int
    record: str
    record_hash: str
    prev_hash: str
    chain_hash: str
    appended_at: str


class LedgerSource(Protocol):
    def streams(self) -> list[str]: ...

    def checkpoints(self, stream: str) -> list[Checkpoint]: ...

    def seq_range(self, stream: str, since: datetime | None, until: datetime | None) -> tuple[int, int]:
        """Lowest and highest seq appended in [since, until); (0, 0) when none."""
        ...

    def entries(self, stream: str, first: int, last: int | None) -> Iterator[Entry]:
        """Entries with first <= seq <= last, in seq order (ties in any order)."""
        ...

    def locate(self, event_id: str) -> list[tuple[str, int, str]]:
        """(stream, seq, record id) of every entry about one event."""
        ...

    def query(self, sql: str, parameters: dict[str, Any]) -> list[tuple[Any, ...]]: ...

    def rows(self, sql: str, parameters: dict[str, Any]) -> Iterator[tuple[Any, ...]]:
        """A query's rows, streamed where the connection allows it."""
        ...


class _Millis:
    """Milliseconds since the epoch to ``timestamp()`` text, exactly (no float rounding)."""

    def __init__(self) -> None:
        self._last_ms = -1
        self._last_text = ""

    def __call__(self, ms: int) -> str:
        if ms != self._last_ms:
            self._last_ms = ms
            self._last_text = timestamp(_EPOCH + timedelta(milliseconds=ms))
        return self._last_text


def _range_sql(since: datetime | None, until: datetime | None) -> str:
    conditions = ["stream = {stream:String}"]
    if since is not None:
        conditions.append("appended_at >= {since:DateTime64(3, 'UTC')}")
    if until is not None:
        conditions.append("appended_at < {until:DateTime64(3, 'UTC')}")
    return f"SELECT min(seq), max(seq), count() FROM audit_ledger WHERE {' AND '.join(conditions)}"


class ClickHouseSource:
    def __init__(self, client: Client, block_rows: int = 65_536) -> None:
        self.client = client
        self.block_rows = block_rows

    def query(self, sql: str, parameters: dict[str, Any]) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in self.client.query(sql, parameters=parameters).result_rows]

    def rows(self, sql: str, parameters: dict[str, Any]) -> Iterator[tuple[Any, ...]]:
        with self.client.query_row_block_stream(sql, parameters=parameters) as blocks:
            for block in blocks:
                yield from block

    def locate(self, event_id: str) -> list[tuple[str, int, str]]:
        rows = self.query(
            "SELECT stream, seq, record_id FROM audit_ledger WHERE event_id = {event:String} "
            "ORDER BY stream, seq",
            {"event": event_id},
        )
        return [(str(stream), int(seq), str(record_id)) for stream, seq, record_id in rows]

    def streams(self) -> list[str]:
        rows = self.query(
            "SELECT stream FROM audit_ledger GROUP BY stream UNION DISTINCT "
            "SELECT stream FROM audit_checkpoints GROUP BY stream",
            {},
        )
        return sorted(str(r[0]) for r in rows)

    def checkpoints(self, stream: str) -> list[Checkpoint]:
        rows = self.query(
            f"SELECT {CHECKPOINT_COLUMNS} FROM audit_checkpoints "
            "WHERE stream = {stream:String} ORDER BY seq",
            {"stream": stream},
        )
        return [Checkpoint.from_row(r) for r in rows]

    def seq_range(self, stream: str, since: datetime | None, until: datetime | None) -> tuple[int, int]:
        parameters: dict[str, Any] = {"stream": stream}
        if since is not None:
            parameters["since"] = since
        if until is not None:
            parameters["until"] = until
        low, high, count = self.query(_range_sql(since, until), parameters)[0]
        return (int(low), int(high)) if count else (0, 0)

    def entries(self, stream: str, first: int, last: int | None) -> Iterator[Entry]:
        upper = "" if last is None else " AND seq <= {last:UInt64}"
        sql = (
            f"SELECT {ENTRY_COLUMNS} FROM audit_ledger "
            f"WHERE stream = {{stream:String}} AND seq >= {{first:UInt64}}{upper} ORDER BY seq"
        )
        millis = _Millis()
        with self.client.query_row_block_stream(
            sql,
            parameters={"stream": stream, "first": first, "last": last},
            settings={"max_block_size": self.block_rows},
        ) as blocks:
            for block in blocks:
                for seq, kind, rid, eid, offset, record, rhash, prev, chain, ms in block:
                    yield Entry(seq, kind, rid, eid, offset, record, rhash, prev, chain, millis(ms))


def _literal(value: Any) -> str:
    """A SQL literal for the query server, which takes no bound parameters."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, datetime):
        return f"toDateTime64('{timestamp(value)[:-1].replace('T', ' ')}', 3, 'UTC')"
    text = str(value).replace("\\", "\\\\").replace("'", "\\'")
    return f"'{text}'"


def _bind(sql: str, parameters: dict[str, Any]) -> str:
    for name, value in parameters.items():
        literal = _literal(value)
        start = sql.find("{" + name + ":")
        while start != -1:
            end = sql.index("}", start)
            sql = sql[:start] + literal + sql[end + 1 :]
            start = sql.find("{" + name + ":", start + len(literal))
    return sql


class RemoteSource(ClickHouseSource):
    """Through the owner's read-only query server, a page of ``page_rows`` at a time."""

    def __init__(self, store_dir: Path, page_rows: int = 50_000) -> None:
        self.store_dir = store_dir
        self.page_rows = page_rows

    def query(self, sql: str, parameters: dict[str, Any]) -> list[tuple[Any, ...]]:
        body = query_remote(self.store_dir, _bind(sql, parameters), "JSONCompactEachRow")
        return [tuple(orjson.loads(line)) for line in body.splitlines() if line]

    def rows(self, sql: str, parameters: dict[str, Any]) -> Iterator[tuple[Any, ...]]:
        return iter(self.query(sql, parameters))

    def checkpoints(self, stream: str) -> list[Checkpoint]:
        rows = self.query(
            "SELECT stream, seq, chain_hash, toUnixTimestamp64Milli(created_at), bundle_revision, key_id, "
            "signature FROM audit_checkpoints WHERE stream = {stream:String} ORDER BY seq",
            {"stream": stream},
        )
        return [
            Checkpoint.from_row((s, int(q), c, _EPOCH + timedelta(milliseconds=int(ms)), b, k, g))
            for s, q, c, ms, b, k, g in rows
        ]

    def entries(self, stream: str, first: int, last: int | None) -> Iterator[Entry]:
        millis = _Millis()
        start = first
        while last is None or start <= last:
            stop = start + self.page_rows - 1 if last is None else min(start + self.page_rows - 1, last)
            rows = self.query(
                f"SELECT {ENTRY_COLUMNS} FROM audit_ledger WHERE stream = {{stream:String}} "
                "AND seq >= {first:UInt64} AND seq <= {last:UInt64} ORDER BY seq",
                {"stream": stream, "first": start, "last": stop},
            )
            for seq, kind, rid, eid, offset, record, rhash, prev, chain, ms in rows:
                yield Entry(
                    int(seq), kind, rid, eid, int(offset), record, rhash, prev, chain, millis(int(ms))
                )
            if rows:
                start = stop + 1
                continue
            following = self._next_seq(stream, stop)  # a gap wider than a page: jump it
            if following is None:
                return
            start = following

    def _next_seq(self, stream: str, after: int) -> int | None:
        low, count = self.query(
            "SELECT min(seq), count() FROM audit_ledger "
            "WHERE stream = {stream:String} AND seq > {after:UInt64}",
            {"stream": stream, "after": after},
        )[0]
        return int(low) if int(count) else None
