"""The ClickHouse HTTP interface, as far as a read-only endpoint speaks it.

ClickHouse clients (clickhouse-connect, clickhouse-go behind Grafana, curl) send a
query as ``query=`` in the URL or as the POST body, bound values as ``param_<name>``,
the output format as ``default_format`` or a ``FORMAT`` clause, credentials as
``X-ClickHouse-User`` / ``X-ClickHouse-Key``, basic auth or ``user`` / ``password``,
and every other URL parameter as a setting. This module turns such a request into
a :class:`HttpQuery`, and a failure into the status, headers and ``Code: N.`` body a
ClickHouse server would send, so clients raise the exceptions they raise against
a server. It does no I/O: :mod:`sinks.query_server` serves it.

Settings are where a read-only endpoint must be careful: a setting can lift limits,
change what a function may reach or write a schema file. Only settings that shape
the output or tighten limits reach the engine (:data:`ENGINE_SETTINGS`); transport
parameters clients send on every request are taken care of here or have no effect
on an endpoint that neither compresses nor streams progress (:data:`TRANSPORT_PARAMETERS`);
anything else is refused with ClickHouse's ``READONLY`` error, never ignored.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

ENGINE_SETTINGS = frozenset(
    {
        "cast_string_to_dynamic_use_inference",
        "date_time_input_format",
        "date_time_output_format",
        "extremes",
        "format_csv_delimiter",
        "join_use_nulls",
        "max_block_size",
        "max_execution_time",
        "max_result_bytes",
        "max_result_rows",
        "max_rows_to_read",
        "output_format_arrow_string_as_string",
        "output_format_csv_crlf_end_of_line",
        "output_format_decimal_trailing_zeros",
        "output_format_json_array_of_rows",
        "output_format_json_named_tuples_as_objects",
        "output_format_json_quote_64bit_floats",
        "output_format_json_quote_64bit_integers",
        "output_format_json_quote_decimals",
        "output_format_json_quote_denormals",
        "output_format_pretty_color",
        "output_format_pretty_max_rows",
        "output_format_tsv_crlf_end_of_line",
        "output_format_write_statistics",
        "result_overflow_mode",
        "session_timezone",
    }
)
"""Settings a client may set per request: they shape the output or limit the query."""

TRANSPORT_PARAMETERS = frozenset(
    {
        "add_http_cors_header",
        "buffer_size",
        "cancel_http_readonly_queries_on_client_close",
        "client_protocol_version",
        "compress",
        "database",
        "decompress",
        "default_format",
        "enable_http_compression",
        "http_headers_progress_interval_ms",
        "http_zlib_compression_level",
        "password",
        "query",
        "query_id",
        "send_progress_in_http_headers",
        "session_check",
        "session_id",
        "session_timeout",
        "user",
        "wait_end_of_query",
    }
)
"""URL parameters about the exchange itself. The endpoint answers uncompressed, whole
and without progress headers, each of which every ClickHouse client accepts."""

DEFAULT_FORMAT = "TabSeparated"
"""ClickHouse's output format when a request names none."""

AUTHENTICATION_FAILED = 516
READONLY = 164
UNKNOWN_DATABASE = 81
UNSUPPORTED_METHOD = 1
NOT_IMPLEMENTED = 48
SYNTAX_ERROR = 62
_HTTP_STATUS = {
    AUTHENTICATION_FAILED: 401,
    192: 401,  # UNKNOWN_USER
    193: 401,  # WRONG_PASSWORD
    194: 401,  # REQUIRED_PASSWORD
    READONLY: 403,
    497: 403,  # ACCESS_DENIED
    SYNTAX_ERROR: 400,
    26: 400,  # CANNOT_PARSE_QUOTED_STRING
    27: 400,  # CANNOT_PARSE_INPUT_ASSERTION_FAILED
    36: 400,  # BAD_ARGUMENTS
    43: 400,  # ILLEGAL_TYPE_OF_ARGUMENT
    73: 400,  # UNKNOWN_FORMAT
    115: 400,  # UNKNOWN_SETTING
    456: 400,  # UNKNOWN_QUERY_PARAMETER
    457: 400,  # BAD_QUERY_PARAMETER
    16: 404,  # NO_SUCH_COLUMN_IN_TABLE
    46: 404,  # UNKNOWN_FUNCTION
    47: 404,  # UNKNOWN_IDENTIFIER
    60: 404,  # UNKNOWN_TABLE
    UNKNOWN_DATABASE: 404,
    UNSUPPORTED_METHOD: 501,
    NOT_IMPLEMENTED: 501,
}
"""HTTP statuses ClickHouse's HTTP handler gives these exception codes; others are 500."""

_CODE = re.compile(r"\bCode: (\d+)\.")
_CONTENT_TYPES = (
    ("JSONEachRow", "application/x-ndjson; charset=UTF-8"),
    ("JSON", "application/json; charset=UTF-8"),
    ("TabSeparated", "text/tab-separated-values; charset=UTF-8"),
    ("TSV", "text/tab-separated-values; charset=UTF-8"),
    ("CSV", "text/csv; charset=UTF-8; header=absent"),
    ("Pretty", "text/plain; charset=UTF-8"),
)


class ClickHouseHttpError(Exception):
    """A failure as ClickHouse reports it: an exception code and its message."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @classmethod
    def from_engine(cls, message: str, default_code: int) -> ClickHouseHttpError:
        """The engine's own ``Code: N. DB::Exception: ...`` text keeps its code."""
        text = message.strip()
        found = _CODE.search(text)
        if found is None:
            return cls(default_code, text)
        return cls(int(found.group(1)), text[found.start() :])

    @property
    def status(self) -> int:
        return _HTTP_STATUS.get(self.code, 500)

    def body(self) -> bytes:
        if self.message.startswith("Code: "):
            return self.message.encode() + b"\n"
        return f"Code: {self.code}. DB::Exception: {self.message}\n".encode()


@dataclass(frozen=True)
class Credentials:
    user: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class HttpQuery:
    """One request, ready to check and run."""

    text: str
    credentials: Credentials
    default_format: str = DEFAULT_FORMAT
    parameters: dict[str, str] = field(default_factory=dict)
    settings: dict[str, str] = field(default_factory=dict)
    query_id: str = ""
    database: str = ""


def parse_request(url_query: str, headers: Iterable[tuple[str, str]], body: bytes) -> HttpQuery:
    """The query a GET or POST request asks for, or :class:`ClickHouseHttpError`.

    As in ClickHouse, the POST body follows the ``query`` parameter after a newline
    (the parameter holds the start of the statement, the body the rest). Header
    names are compared without case: clients (Go's among them) change it.
    """
    header = _lowered(headers)
    fields = parse_qsl(url_query, keep_blank_values=True)
    values = dict(fields)
    _refuse_compression(values, header)
    parts = [values.get("query", ""), _decode(body)]
    text = "\n".join(part for part in parts if part)
    if not text.strip():
        raise ClickHouseHttpError(SYNTAX_ERROR, "Empty query. (SYNTAX_ERROR)")
    parameters: dict[str, str] = {}
    settings: dict[str, str] = {}
    for name, value in fields:
        if name.startswith("param_") and len(name) > len("param_"):
            parameters[name.removeprefix("param_")] = value
        elif name in ENGINE_SETTINGS:
            settings[name] = value
        elif name not in TRANSPORT_PARAMETERS:
            raise ClickHouseHttpError(
                READONLY, f"Cannot modify '{name}' setting in readonly mode. (READONLY)"
            )
    return HttpQuery(
        text=text,
        credentials=credentials(values, header),
        default_format=values.get("default_format") or header.get("x-clickhouse-format") or DEFAULT_FORMAT,
        parameters=parameters,
        settings=settings,
        query_id=values.get("query_id", ""),
        database=values.get("database") or header.get("x-clickhouse-database", ""),
    )


def request_credentials(url_query: str, headers: Iterable[tuple[str, str]]) -> Credentials:
    """Who a request says it is, before anything else of it is read."""
    return credentials(dict(parse_qsl(url_query, keep_blank_values=True)), _lowered(headers))


def credentials(values: Mapping[str, str], header: Mapping[str, str]) -> Credentials:
    """Who the request says it is, by whichever of ClickHouse's three ways it chose.

    ``header`` is keyed by lower-case names. A request that names nobody is the
    ``default`` user with no password, as in ClickHouse.
    """
    if "x-clickhouse-user" in header or "x-clickhouse-key" in header:
        return Credentials(header.get("x-clickhouse-user", "default"), header.get("x-clickhouse-key", ""))
    authorization = header.get("authorization", "")
    if authorization[:6].lower() == "basic ":
        try:
            decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError) as error:
            raise ClickHouseHttpError(AUTHENTICATION_FAILED, "Malformed basic authorization") from error
        user, _, password = decoded.partition(":")
        return Credentials(user or "default", password)
    if authorization:
        raise ClickHouseHttpError(AUTHENTICATION_FAILED, "Only basic authorization is supported")
    return Credentials(values.get("user") or "default", values.get("password", ""))


def _refuse_compression(values: Mapping[str, str], header: Mapping[str, str]) -> None:
    """Compressed exchanges are refused, not misread: the answer would be garbage to the client.

    (``enable_http_compression`` with ``Accept-Encoding`` is only an offer, and the
    endpoint answers uncompressed, which HTTP allows.)
    """
    encoding = header.get("content-encoding", "identity").strip().lower()
    if values.get("compress", "0") != "0" or values.get("decompress", "0") != "0" or encoding != "identity":
        raise ClickHouseHttpError(
            NOT_IMPLEMENTED,
            "Compressed requests and ClickHouse-compressed answers (compress, decompress, Content-Encoding) "
            "are not supported here: turn compression off in the client. (NOT_IMPLEMENTED)",
        )


def content_type(fmt: str) -> str:
    """The Content-Type ClickHouse sends with output in ``fmt`` (binary formats are octet streams)."""
    for prefix, kind in _CONTENT_TYPES:
        if fmt.startswith(prefix):
            return kind
    return "application/octet-stream"


def _lowered(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers}


def _decode(body: bytes) -> str:
    try:
        return body.decode()
    except UnicodeDecodeError as error:
        raise ClickHouseHttpError(SYNTAX_ERROR, "The query is not valid UTF-8. (SYNTAX_ERROR)") from error
