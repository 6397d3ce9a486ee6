"""Do the analysts' tables still say what the ledger recorded?

The ledger keeps each decision, finding and alert as it was written; the
``decisions``, ``findings`` and ``alerts`` tables are what people query. This check
reads every table row (deduplicated, as the ``*_unique`` views show them), puts it
in canonical form and looks its hash up among the ledger's entries for that record.
Work is split in hash buckets of the record id so memory stays bounded: one bucket
of ledger hashes is held at a time while the matching table rows stream past.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime
from typing import Any, NamedTuple, get_type_hints

from audit.canonical import canonical_record, parse_timestamp, record_hash
from audit.ledger import RECORD_TABLES
from audit.source import LedgerSource
from audit.verify import Problem
from sinks.clickhouse import TABLES

BUCKET_ENTRIES = 200_000
MAX_PROBLEMS_PER_TABLE = 20

TABLE_MODIFIED = "table-modified"
TABLE_UNRECORDED = "table-unrecorded"
TABLE_DELETED = "table-deleted"


def check_tables(source: LedgerSource) -> list[Problem]:
    problems: list[Problem] = []
    for table, (kind, id_column) in RECORD_TABLES.items():
        problems.extend(_check_table(source, table, kind, id_column))
    return problems


def _check_table(source: LedgerSource, table: str, kind: str, id_column: str) -> list[Problem]:
    row_type = TABLES[table]
    to_row = _row_builder(row_type)
    columns = ", ".join(f"`{name}`" for name in row_type._fields)
    id_index = row_type._fields.index(id_column)
    total = int(
        source.query("SELECT count() FROM audit_ledger WHERE kind = {kind:String}", {"kind": kind})[0][0]
    )
    buckets = max(1, math.ceil(total / BUCKET_ENTRIES))
    found: list[Problem] = []
    hidden = 0

    def report(problem_kind: str, record_id: str, detail: str) -> None:
        nonlocal hidden
        if len(found) < MAX_PROBLEMS_PER_TABLE:
            found.append(Problem(problem_kind, f"table {table}", None, f"{kind} {record_id}: {detail}"))
        else:
            hidden += 1

    for bucket in range(buckets):
        recorded: dict[str, set[str]] = {}
        for record_id, digest in source.query(
            "SELECT record_id, record_hash FROM audit_ledger WHERE kind = {kind:String} "
            "AND cityHash64(record_id) % {buckets:UInt64} = {bucket:UInt64}",
            {"kind": kind, "buckets": buckets, "bucket": bucket},
        ):
            recorded.setdefault(str(record_id), set()).add(str(digest))
        seen: set[str] = set()
        for values in source.rows(
            f"SELECT {columns} FROM {table} FINAL "
            f"WHERE cityHash64({id_column}) % {{buckets:UInt64}} = {{bucket:UInt64}}",
            {"buckets": buckets, "bucket": bucket},
        ):
            record_id = str(values[id_index])
            seen.add(record_id)
            digests = recorded.get(record_id)
            if digests is None:
                report(TABLE_UNRECORDED, record_id, "the row has no ledger entry: added outside the pipeline")
            elif record_hash(canonical_record(to_row(values))) not in digests:
                report(TABLE_MODIFIED, record_id, "the row differs from what the ledger recorded")
        for record_id in sorted(set(recorded) - seen):
            report(TABLE_DELETED, record_id, f"recorded in the ledger but missing from {table}")
    if hidden:
        found.append(Problem(TABLE_MODIFIED, f"table {table}", None, f"{hidden} more problems not shown"))
    return found


def _row_builder(row_type: type[NamedTuple]) -> Callable[[tuple[Any, ...]], NamedTuple]:
    """Rows as the pipeline wrote them, whether values came typed or as JSON text.

    A client returns typed values, which canonical form takes as they are; the query
    server answers in JSON, where timestamps and 64-bit integers arrive as text.
    """
    hints = get_type_hints(row_type)
    textual = [
        (index, _to_datetime if hints.get(name) is datetime else int)
        for index, name in enumerate(row_type._fields)
        if hints.get(name) in (datetime, int)
    ]
    make = row_type._make

    def build(values: tuple[Any, ...]) -> NamedTuple:
        if not any(isinstance(values[index], str) for index, _ in textual):
            return make(values)
        converted = list(values)
        for index, convert in textual:
            if isinstance(converted[index], str):
                converted[index] = convert(converted[index])
        return make(converted)

    return build


def _to_datetime(text: str) -> datetime:
    return parse_timestamp(text.replace(" ", "T") + "Z")
