"""Queries that can only read the store, checked by ClickHouse's own parser.

``readonly`` settings stop writes to tables, but not a query from reading a file
(``file()``, scalar or table function), calling out (``url``, ``remote``, ``s3``,
``executable``...), writing ``INTO OUTFILE``, cancelling another client's queries
(``KILL``) or changing settings. Every read-only entry point (``vigil sql``, the
reports, the owner's query server, embedded or against a server) passes the text
through :func:`check_read_only` before running it:

1. the engine formats the text (``formatQuerySingleLine``, the text passed as a
   bound parameter): one statement or a syntax error, never two;
2. the engine parses the single statement (``EXPLAIN AST``) and the tree is
   checked: the statement is a query (SELECT, SHOW, DESCRIBE, EXISTS or EXPLAIN of
   one), with no ``INTO OUTFILE``, no ``SETTINGS``, and no function that reaches
   outside the database. Table functions are refused unless they only generate
   or read data already in the database; the list of table functions comes from
   the running engine, so one added by a later version is refused until it is
   reviewed.

Checking the engine's own parse, not the text, leaves no room for comments,
quoting or case to hide a call.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from clickhouse_connect.driver.binding import format_str

QUERY_NODES = frozenset(
    {
        "SelectWithUnionQuery",
        "SelectIntersectExceptQuery",
        "ShowTables",
        "DescribeQuery",
        "ShowCreateTableQuery",
        "ExistsTableQuery",
        "ExistsDatabaseQuery",
        "Explain",
    }
)
"""Statements that only read; anything else (KILL, SYSTEM, SET, INSERT, DDL) is refused."""

QUERY_KEYWORDS = frozenset({"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXISTS", "EXPLAIN"})
"""How a formatted read-only statement may begin; the parse tree is checked after."""

SAFE_TABLE_FUNCTIONS = frozenset(
    {
        "numbers",
        "numbers_mt",
        "zeros",
        "zeros_mt",
        "generateSeries",
        "generate_series",
        "primes",
        "values",
        "format",
        "generateRandom",
        "view",
        "merge",
        "cluster",
        "clusterAllReplicas",
    }
)
"""Table functions that generate rows or read tables of this database (or its cluster)."""

REFUSED_FUNCTIONS = frozenset({"file", "sleep", "sleepEachRow", "getClientHTTPHeader"})
"""Ordinary functions that read the file system or hold the owner's threads."""


class ReadOnlyError(ValueError):
    """The query could change something or reach outside the database."""


class Rows(Protocol):
    @property
    def result_rows(self) -> Sequence[Sequence[Any]]: ...


class QueryClient(Protocol):
    """What the check needs of a client: a clickhouse-connect ``Client``, or the query
    server's raw engine connection, whose bound values travel as HTTP sent them."""

    def query(self, query: str, parameters: dict[str, Any] | None = None) -> Rows: ...


def check_read_only(
    client: QueryClient, query: str, parameters: Mapping[str, str | int] | None = None
) -> str:
    """Raise :class:`ReadOnlyError` unless ``query`` is one statement that only reads.

    ``parameters`` are the values its ``{name:Type}`` placeholders will be bound to:
    the parse needs them, and being values they cannot change what the statement does.
    Returns the statement as the engine formats it, on one line.
    """
    single = _single_statement(client, query)
    first = single.lstrip("( ").split(" ", 1)[0].upper()
    if first not in QUERY_KEYWORDS:
        raise ReadOnlyError(f"not allowed in a read-only query: {first or 'an empty'} statements")
    try:
        explained = client.query(f"EXPLAIN AST {single}", parameters=dict(parameters or {}))
        tree = [str(row[0]) for row in explained.result_rows]
    except Exception as error:
        raise ReadOnlyError(_first_line(str(error))) from error
    refused = refused_in_tree(tree, _table_functions(client))
    if refused:
        raise ReadOnlyError(f"not allowed in a read-only query: {refused}")
    return single


def refused_in_tree(tree: list[str], table_functions: frozenset[str]) -> str:
    """What makes a parsed statement unsafe to run read-only, or '' when nothing does.

    ``tree`` is ``EXPLAIN AST`` output: one node per line, indented one space per
    level. A literal directly under a ``SelectWithUnionQuery`` is the target of
    ``INTO OUTFILE`` (the query's own values sit deeper, under ``SelectQuery``).
    Names are compared without case, as ClickHouse resolves many of them.
    """
    if not tree or not tree[0].split():
        return "an empty statement"
    root = tree[0].split()[0]
    if root not in QUERY_NODES:
        return f"{root} statements"
    forbidden = {name.lower() for name in (table_functions - SAFE_TABLE_FUNCTIONS) | REFUSED_FUNCTIONS}
    parents: list[str] = [root]
    for line in tree[1:]:
        node = line.split()
        if not node:
            continue
        depth = len(line) - len(line.lstrip(" "))
        del parents[depth:]
        parent = parents[-1] if parents else ""
        parents.append(node[0])
        if node[0] == "Literal" and parent in ("SelectWithUnionQuery", "Explain"):
            return "INTO OUTFILE"
        if node[0] == "Set":
            return "SETTINGS"
        if parent == "Explain" and node[0].endswith("Query") and node[0] not in QUERY_NODES:
            return f"{node[0]} statements"  # EXPLAIN of an INSERT, a DDL statement...
        if node[0] == "Function" and len(node) > 1 and node[1].lower() in forbidden:
            return f"function {node[1]}()"
    return ""


def _single_statement(client: QueryClient, query: str) -> str:
    try:
        # A quoted literal, not a bound value: this call's text must reach the engine
        # the same way through every client.
        rows = client.query(f"SELECT formatQuerySingleLine({format_str(query)})").result_rows
    except Exception as error:
        raise ReadOnlyError(_first_line(str(error))) from error
    return str(rows[0][0])


def _table_functions(client: QueryClient) -> frozenset[str]:
    return frozenset(str(r[0]) for r in client.query("SELECT name FROM system.table_functions").result_rows)


def _first_line(message: str) -> str:
    return message.strip().splitlines()[0] if message.strip() else "invalid query"
