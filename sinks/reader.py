"""Read rows for a report, whoever owns the store.

Reports (policy replay, controls) read from ClickHouse. Against a server, or an
embedded store nobody else has open, they query directly; when a worker or the
demo owns the embedded store, they go through its read-only query server.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import orjson

from sinks.clickhouse import StoreLockedError, connect
from sinks.query_server import QueryError, query_remote
from sinks.read_only import ReadOnlyError, check_read_only


def read_rows(
    store_url: str, query: str, parameters: Mapping[str, str | int] | None = None
) -> Iterator[dict[str, Any]]:
    """Rows of a SELECT as dicts; a query that could do more than read raises ``QueryError``."""
    try:
        client = connect(store_url)
    except StoreLockedError:
        output = query_remote(Path(store_url.removeprefix("chdb://")), query, "JSONEachRow", parameters)
    else:
        try:
            check_read_only(client, query, parameters)
            output = client.raw_query(
                query, parameters=dict(parameters or {}), fmt="JSONEachRow", settings={"readonly": 2}
            )
        except ReadOnlyError as error:
            raise QueryError(str(error)) from error
        finally:
            client.close()
    for line in output.splitlines():
        if line.strip():
            yield orjson.loads(line)


class RemoteReader:
    """An ``alerting.store.SqlReader`` through the owner's query server (``vigil sql`` uses the same)."""

    def __init__(self, store_dir: Path) -> None:
        self.store_dir = store_dir

    def rows(self, sql: str, parameters: Mapping[str, str | int] | None = None) -> list[dict[str, Any]]:
        output = query_remote(self.store_dir, sql, "JSONEachRow", parameters)
        return [orjson.loads(line) for line in output.splitlines() if line.strip()]
