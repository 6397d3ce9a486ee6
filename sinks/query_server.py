"""Read-only SQL for an embedded store that another process owns.

chDB lets one process open a directory. The owner (a worker, ``vigil demo``)
serves read-only queries on loopback and writes the address and a random token to
``<store>/query-endpoint.json`` (mode 0600); ``vigil sql`` uses it when it finds
the store locked. Queries run on a separate client with ``readonly=2``, so they
cannot change data or the owner's session, and only after
:func:`sinks.read_only.check_read_only` found that they cannot reach the file
system, the network, other queries or settings either.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import threading
import urllib.error
import urllib.request
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from sinks.read_only import ReadOnlyError, check_read_only

log = logging.getLogger(__name__)

ENDPOINT_FILE = "query-endpoint.json"
_MAX_QUERY_BYTES = 1 << 20


class QueryError(RuntimeError):
    """The query failed; the message is ClickHouse's."""


class QueryServer:
    def __init__(self, client: Client, store_dir: Path) -> None:
        self._client = client
        self._token = secrets.token_urlsafe(24)
        self._endpoint_file = store_dir / ENDPOINT_FILE
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, name="vigil-sql", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/"

    def start(self) -> QueryServer:
        self._thread.start()
        descriptor = os.open(self._endpoint_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            json.dump({"url": self.url, "token": self._token, "pid": os.getpid()}, handle)
        return self

    def stop(self) -> None:
        self._endpoint_file.unlink(missing_ok=True)
        self._server.shutdown()
        self._server.server_close()
        self._client.close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        client, token = self._client, self._token

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                if not secrets.compare_digest(self.headers.get("X-Vigil-Token", ""), token):
                    self._reply(403, b"bad token")
                    return
                length = int(self.headers.get("Content-Length", "0"))
                if length > _MAX_QUERY_BYTES:
                    self._reply(413, b"query too long")
                    return
                query = self.rfile.read(length).decode("utf-8", "replace")
                fmt = self.headers.get("X-Vigil-Format", "PrettyCompact") or None
                try:
                    parameters = _parameters(self.headers.get("X-Vigil-Parameters", ""))
                    check_read_only(client, query, parameters)
                    body = client.raw_query(query, parameters=parameters, fmt=fmt, settings={"readonly": 2})
                except (ClickHouseError, ReadOnlyError) as error:
                    self._reply(400, str(error).encode())
                    return
                self._reply(200, body)

            def _reply(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                log.debug("query server: " + format, *args)

        return Handler


def _parameters(header: str) -> dict[str, str | int]:
    """Bound values from the ``X-Vigil-Parameters`` header (a JSON object of strings and ints)."""
    if not header:
        return {}
    try:
        decoded = json.loads(header)
    except ValueError as error:
        raise ReadOnlyError("X-Vigil-Parameters is not JSON") from error
    if not isinstance(decoded, dict) or not all(
        isinstance(v, str | int) and not isinstance(v, bool) for v in decoded.values()
    ):
        raise ReadOnlyError("X-Vigil-Parameters must map names to strings or integers")
    return {str(k): v for k, v in decoded.items()}


def query_remote(
    store_dir: Path,
    query: str,
    fmt: str,
    parameters: Mapping[str, str | int] | None = None,
    timeout: float = 120.0,
) -> bytes:
    """Run ``query`` through the owning process's server, ``parameters`` bound to its placeholders."""
    try:
        endpoint = json.loads((store_dir / ENDPOINT_FILE).read_text())
    except (OSError, ValueError) as error:
        raise QueryError(f"{store_dir} is locked by another process that serves no queries") from error
    request = urllib.request.Request(
        endpoint["url"],
        data=query.encode(),
        headers={
            "X-Vigil-Token": endpoint["token"],
            "X-Vigil-Format": fmt,
            "X-Vigil-Parameters": json.dumps(dict(parameters or {}), ensure_ascii=True),
        },
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return bytes(response.read())
    except urllib.error.HTTPError as error:
        raise QueryError(error.read().decode("utf-8", "replace")) from error
    except urllib.error.URLError as error:
        raise QueryError(f"owner of {store_dir} does not answer: {error.reason}") from error
