"""Read-only SQL stays read-only: no files, no network, no other queries, no settings.

Each hostile query goes through both ways ``vigil sql`` reaches the store: directly
(nobody owns it) and through the owner's query server (a worker or the demo owns
it). A secret file beside the store plays the HMAC key and the audit signing key.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sinks.query_server import QueryError, query_remote
from tests.integration.test_cli import vigil
from vigil.runtime import OpenStore, open_store
from vigil.settings import Settings

pytestmark = pytest.mark.integration

SECRET = "hmac-secret-never-leaves-this-file"

HOSTILE = {
    "scalar file": "SELECT file('{secret}')",
    "table file": "SELECT * FROM file('{secret}', 'LineAsString')",
    "file in upper case": "SELECT FILE('{secret}')",
    "file behind a comment and a CTE": (
        "WITH x AS (SELECT 1) SELECT /* hi */ * FROM x, file('{secret}', 'LineAsString')"
    ),
    "into outfile": "SELECT 'owned' INTO OUTFILE '{outfile}'",
    "explain into outfile": "EXPLAIN SELECT 1 INTO OUTFILE '{outfile}'",
    "url": "SELECT * FROM url('http://127.0.0.1:9/x', 'LineAsString')",
    "remote": "SELECT * FROM remote('127.0.0.1:9', system.one)",
    "executable": "SELECT * FROM executable('touch {outfile}', 'LineAsString', 'x String')",
    "s3": "SELECT * FROM s3('http://127.0.0.1:9/bucket/x', 'LineAsString')",
    "hdfs": "SELECT * FROM hdfs('hdfs://127.0.0.1:9/x', 'LineAsString')",
    "mysql": "SELECT * FROM mysql('127.0.0.1:9', 'db', 't', 'u', 'p')",
    "postgresql": "SELECT * FROM postgresql('127.0.0.1:9', 'db', 't', 'u', 'p')",
    "kill": "KILL QUERY WHERE 1",
    "system": "SYSTEM FLUSH LOGS",
    "set readonly": "SET readonly = 0",
    "settings clause": "SELECT 1 SETTINGS readonly = 0",
    "a second statement": "SELECT 1; DROP TABLE events",
    "insert": "INSERT INTO rejected (rejected_id) VALUES ('x')",
    "explain insert": "EXPLAIN INSERT INTO rejected (rejected_id) VALUES ('x')",
    "drop": "DROP TABLE events",
}

ORDINARY = [
    "SELECT count() FROM events_unique",
    "SELECT code, count() FROM rejected_unique GROUP BY ALL ORDER BY code",
    "SELECT number FROM numbers(3) WHERE number IN (SELECT 1)",
    "SELECT 'file(' AS text, 'INTO OUTFILE' AS words",
    "SHOW TABLES",
    "DESCRIBE TABLE events",
    "EXPLAIN SELECT count() FROM events",
]


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    """A store with its tables, and a secret file beside it."""
    open_store(Settings(data_dir=tmp_path)).close()
    path = tmp_path / "keys.yaml"
    path.write_text(SECRET)
    return path


def _hostile(case: str, secret: Path, tmp_path: Path) -> str:
    return HOSTILE[case].format(secret=secret, outfile=tmp_path / "written-by-query")


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_vigil_sql_refuses_what_reaches_outside(case: str, secret: Path, tmp_path: Path) -> None:
    result = vigil(tmp_path, "sql", _hostile(case, secret, tmp_path), "--format", "TSV")
    assert result.returncode != 0
    assert "Error" in result.stderr
    assert SECRET not in result.stdout + result.stderr
    assert not (tmp_path / "written-by-query").exists()
    tables = vigil(tmp_path, "sql", "SHOW TABLES", "--format", "TSV")
    assert "events" in tables.stdout.split()


@pytest.fixture
def owned(tmp_path: Path) -> Iterator[OpenStore]:
    opened = open_store(Settings(data_dir=tmp_path))
    yield opened
    opened.close()


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_the_owners_query_server_refuses_what_reaches_outside(
    case: str, secret: Path, tmp_path: Path, owned: OpenStore
) -> None:
    with pytest.raises(QueryError) as refused:
        query_remote(tmp_path / "clickhouse", _hostile(case, secret, tmp_path), "TSV")
    assert SECRET not in str(refused.value)
    assert not (tmp_path / "written-by-query").exists()


@pytest.mark.parametrize("query", ORDINARY)
def test_ordinary_reads_still_work_both_ways(query: str, secret: Path, tmp_path: Path) -> None:
    direct = vigil(tmp_path, "sql", query, "--format", "TSV")
    assert direct.returncode == 0, direct.stderr
    opened = open_store(Settings(data_dir=tmp_path))
    try:
        assert query_remote(tmp_path / "clickhouse", query, "TSV") == direct.stdout.encode()
    finally:
        opened.close()
