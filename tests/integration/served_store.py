"""A store filled by ``vigil demo``, then owned by this process and served over HTTP.

The owner answers on the ClickHouse HTTP interface as a worker would; tests read it
the way clickhouse-connect, curl and Grafana do.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import clickhouse_connect
from clickhouse_connect.driver.client import Client
from pydantic import SecretStr

from sinks.query_server import QUERY_USER
from tests.integration.test_cli import vigil
from vigil.runtime import OpenStore, open_store
from vigil.settings import QuerySettings, Settings

PASSWORD = "dashboards-read-with-this"


@dataclass
class ServedStore:
    data_dir: Path
    opened: OpenStore

    @property
    def url(self) -> str:
        assert self.opened.query_server is not None
        return self.opened.query_server.url

    @property
    def port(self) -> int:
        port = urlsplit(self.url).port
        assert port is not None
        return port

    def client(self, password: str = PASSWORD, **options: Any) -> Client:
        return clickhouse_connect.get_client(
            host="127.0.0.1", port=self.port, username=QUERY_USER, password=password, **options
        )

    def owner_rows(self, query: str) -> list[tuple[Any, ...]]:
        """The answer of the owner's own client, to compare what HTTP clients get with."""
        return list(self.opened.store.client.query(query).result_rows)


@contextmanager
def served_demo_store(data_dir: Path, events: int = 1500) -> Iterator[ServedStore]:
    demo = vigil(data_dir, "demo", "--events", str(events))
    assert demo.returncode == 0, demo.stderr
    settings = Settings(data_dir=data_dir, query=QuerySettings(password=SecretStr(PASSWORD)))
    opened = open_store(settings)
    try:
        yield ServedStore(data_dir, opened)
    finally:
        opened.close()
