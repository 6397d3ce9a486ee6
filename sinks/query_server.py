"""Read-only SQL over the ClickHouse HTTP interface, for an embedded store another process owns.

chDB lets one process open a directory. The owner (a worker, ``vigil demo``) serves
read-only queries the way a ClickHouse server does over HTTP (:mod:`sinks.clickhouse_http`),
so clickhouse-connect, curl and Grafana's ClickHouse data source read the store while
it is written. The one user is :data:`QUERY_USER`; its password is
``VIGIL_QUERY_PASSWORD`` or, unset, a random one per start. The owner writes the
address, user and password to ``<store>/query-endpoint.json`` (mode 0600), where
``vigil sql`` and the reports find them when the store is locked (docs/querying.md).

Every query passes :func:`sinks.read_only.check_read_only` (one statement that
cannot reach the file system, the network, other queries or settings) and then runs
on a chDB connection of its own set to ``readonly=2``, so it cannot change data or the
owner's session either. Only the settings of :data:`sinks.clickhouse_http.ENGINE_SETTINGS`
are applied per request, and reset after it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import secrets
import socket
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import chdb
import orjson
from clickhouse_connect.driver.binding import format_bind_value

from sinks.clickhouse_http import (
    AUTHENTICATION_FAILED,
    READONLY,
    SYNTAX_ERROR,
    UNKNOWN_DATABASE,
    UNSUPPORTED_METHOD,
    ClickHouseHttpError,
    Credentials,
    HttpQuery,
    content_type,
    parse_request,
    request_credentials,
)
from sinks.embedded_engine import connection_string
from sinks.read_only import ReadOnlyError, check_read_only

log = logging.getLogger(__name__)

ENDPOINT_FILE = "query-endpoint.json"
QUERY_USER = "vigil"
"""The only user; the query server has no other accounts."""
DATABASE = "default"
MAX_QUERY_BYTES = 1 << 20
IDLE_CONNECTION_SECONDS = 60.0
"""A kept-alive connection with no request for this long is closed (clients reconnect)."""
LINGER_SECONDS = 5.0
LINGER_MAX_BYTES = 64 << 20
"""How long, and how much of a refused body, is read and discarded before closing."""

_FORMAT_CLAUSE = re.compile(r" FORMAT (\w+)$")


class QueryError(RuntimeError):
    """The query failed; the message is ClickHouse's."""


class QueryServerError(RuntimeError):
    """The query interface cannot listen where it was told to (a port in use, an unknown address)."""


@dataclass(frozen=True)
class Answer:
    body: bytes
    fmt: str


class ReadOnlyRunner:
    """Checks and runs one query at a time on a read-only chDB connection of its own.

    The connection is raw chDB, not clickhouse-connect: HTTP query parameters are
    already in ClickHouse's text form and must reach the engine (for the check's parse
    as for the run) exactly as sent, where clickhouse-connect would quote them again.
    """

    def __init__(self, store_dir: Path) -> None:
        self._connection = chdb.connect(connection_string(store_dir))  # type: ignore[no-untyped-call]  # chdb has no hints
        self._connection.query("SET readonly = 2")
        self._lock = threading.Lock()
        self.timezone = self._connection.query("SELECT timezone()", "TabSeparated").bytes().decode().strip()

    def run(self, query: HttpQuery) -> Answer:
        if query.database not in ("", DATABASE):
            raise ClickHouseHttpError(
                UNKNOWN_DATABASE, f"Database {query.database} does not exist. (UNKNOWN_DATABASE)"
            )
        with self._lock:
            statement = self._check(query)
            named = _FORMAT_CLAUSE.search(statement)
            fmt = named.group(1) if named else query.default_format
            for name, value in query.settings.items():
                self._engine(f"SET {name} = {_quoted(value)}", "TabSeparated")
            try:
                result = self._engine(query.text, fmt, query.parameters)
            finally:
                for name in query.settings:
                    self._engine(f"SET {name} = DEFAULT", "TabSeparated")
        return Answer(result, fmt)

    def query(self, query: str, parameters: dict[str, Any] | None = None) -> _Rows:
        """The read-only check's client (:class:`sinks.read_only.QueryClient`)."""
        output = self._engine(query, "JSONCompactEachRow", parameters)
        return _Rows([tuple(orjson.loads(line)) for line in output.splitlines() if line])

    def close(self) -> None:
        with self._lock:
            self._connection.close()

    def _check(self, query: HttpQuery) -> str:
        try:
            return check_read_only(self, query.text, query.parameters)
        except ReadOnlyError as error:
            message = str(error)
            if not message.startswith("Code: "):
                message = f"Code: {READONLY}. DB::Exception: {message}. (READONLY)"
            raise ClickHouseHttpError.from_engine(message, READONLY) from error

    def _engine(self, sql: str, fmt: str, parameters: Mapping[str, Any] | None = None) -> bytes:
        try:
            result = self._connection.query(sql, fmt, params=dict(parameters or {}))
        except RuntimeError as error:
            raise ClickHouseHttpError.from_engine(str(error), SYNTAX_ERROR) from error
        return bytes(result.bytes() or b"")


@dataclass(frozen=True)
class _Rows:
    result_rows: list[tuple[Any, ...]]


class QueryServer:
    def __init__(
        self,
        store_dir: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        password: str | None = None,
    ) -> None:
        self._password = password or secrets.token_urlsafe(24)
        self._endpoint_file = store_dir / ENDPOINT_FILE
        self._runner = ReadOnlyRunner(store_dir)
        try:
            self._server = ThreadingHTTPServer((host, port), _handler(self._runner, self._password))
        except OSError as error:
            self._runner.close()
            reason = error.strerror or error
            raise QueryServerError(f"cannot serve queries on {host}:{port}: {reason}") from None
        self._thread = threading.Thread(target=self._server.serve_forever, name="vigil-sql", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/"

    def start(self) -> QueryServer:
        self._thread.start()
        descriptor = os.open(self._endpoint_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        endpoint = {"url": self.url, "user": QUERY_USER, "password": self._password, "pid": os.getpid()}
        with os.fdopen(descriptor, "w") as handle:
            json.dump(endpoint, handle)
        log.info("ClickHouse HTTP interface (read-only) on %s, user %s", self.url, QUERY_USER)
        return self

    def stop(self) -> None:
        self._endpoint_file.unlink(missing_ok=True)
        self._server.shutdown()
        self._server.server_close()
        self._runner.close()


def _handler(runner: ReadOnlyRunner, password: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: clients pool their connections
        timeout = IDLE_CONNECTION_SECONDS
        # Headers and body leave as two writes: without this, Nagle's algorithm holds the
        # body until the client's delayed ACK, some 40 ms on every answer.
        disable_nagle_algorithm = True

        def do_GET(self) -> None:
            self._serve(b"")

        def do_POST(self) -> None:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                # A streamed body is data for an INSERT: refused unread (after the
                # credentials), and the connection closes after the answer.
                self.close_connection = True
                self._serve(b"", streamed=True)
                self._linger()
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_QUERY_BYTES:
                self.close_connection = True
                self._fail(ClickHouseHttpError(SYNTAX_ERROR, f"Max query size exceeded ({MAX_QUERY_BYTES})"))
                self._linger()
                return
            self._serve(self.rfile.read(length))

        def _linger(self) -> None:
            """Let a client still sending the body it was refused finish, and so read the answer.

            Closing with its bytes unread would reset the connection under the client's
            feet: it would see a broken pipe instead of the refusal.
            """
            self.wfile.flush()
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_WR)
                self.connection.settimeout(LINGER_SECONDS)
                discarded = 0
                while discarded < LINGER_MAX_BYTES and (chunk := self.connection.recv(1 << 16)):
                    discarded += len(chunk)

        def _serve(self, body: bytes, streamed: bool = False) -> None:
            url = urlsplit(self.path)
            if url.path == "/ping" or (url.path == "/" and not url.query and not body and not streamed):
                self._reply(200, b"Ok.\n", {"Content-Type": "text/html; charset=UTF-8"})
                return
            if url.path != "/":
                self._fail(ClickHouseHttpError(UNSUPPORTED_METHOD, f"There is no handler for {url.path}"))
                return
            try:
                _authenticate(request_credentials(url.query, self.headers.items()), password)
                if streamed:
                    raise ClickHouseHttpError(READONLY, "Cannot insert into a read-only store. (READONLY)")
                query = parse_request(url.query, self.headers.items(), body)
                answer = runner.run(query)
            except ClickHouseHttpError as error:
                self._fail(error)
                return
            self._reply(
                200,
                answer.body,
                {
                    "Content-Type": content_type(answer.fmt),
                    "X-ClickHouse-Format": answer.fmt,
                    "X-ClickHouse-Timezone": runner.timezone,
                    "X-ClickHouse-Query-Id": query.query_id or str(uuid.uuid4()),
                },
            )

        def _fail(self, error: ClickHouseHttpError) -> None:
            headers = {
                "Content-Type": "text/plain; charset=UTF-8",
                "X-ClickHouse-Exception-Code": str(error.code),
            }
            if error.status == 401:
                headers["WWW-Authenticate"] = 'Basic realm="vigil"'
            self._reply(error.status, error.body(), headers)

        def _reply(self, status: int, body: bytes, headers: dict[str, str]) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            if self.close_connection:
                self.send_header("Connection", "close")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            # The path only: a query string may hold a password (``?password=``).
            log.debug("query server: %s %s %s", self.command, urlsplit(self.path).path, code)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            log.debug("query server: " + format, *args)

    return Handler


def _authenticate(claimed: Credentials, password: str) -> None:
    if claimed.user != QUERY_USER or not secrets.compare_digest(claimed.password.encode(), password.encode()):
        raise ClickHouseHttpError(
            AUTHENTICATION_FAILED,
            f"{claimed.user}: Authentication failed: password is incorrect, "
            "or there is no user with such name. (AUTHENTICATION_FAILED)",
        )


def _quoted(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


@dataclass(frozen=True)
class Endpoint:
    """Where the owner of a store serves queries, read from its ``query-endpoint.json``."""

    url: str
    user: str
    password: str

    @classmethod
    def of(cls, store_dir: Path) -> Endpoint:
        try:
            found = json.loads((store_dir / ENDPOINT_FILE).read_text())
            return cls(found["url"], found["user"], found["password"])
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise QueryError(f"{store_dir} is locked by another process that serves no queries") from error


def query_remote(
    store_dir: Path,
    query: str,
    fmt: str,
    parameters: Mapping[str, str | int] | None = None,
    timeout: float = 120.0,
) -> bytes:
    """Run ``query`` through the owning process's server, ``parameters`` bound to its placeholders.

    ``fmt`` is the output format unless the query ends in its own ``FORMAT`` clause
    (empty: ClickHouse's default, TabSeparated).
    """
    endpoint = Endpoint.of(store_dir)
    fields = {f"param_{name}": format_bind_value(value) for name, value in (parameters or {}).items()}
    if fmt:
        fields["default_format"] = fmt
    request = urllib.request.Request(
        f"{endpoint.url}?{urlencode(fields)}",
        data=query.encode(),
        headers={"X-ClickHouse-User": endpoint.user, "X-ClickHouse-Key": endpoint.password},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return bytes(response.read())
    except urllib.error.HTTPError as error:
        raise QueryError(error.read().decode("utf-8", "replace").strip()) from error
    except urllib.error.URLError as error:
        raise QueryError(f"owner of {store_dir} does not answer: {error.reason}") from error
