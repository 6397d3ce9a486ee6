"""The owner's query server speaks the ClickHouse HTTP interface, read-only.

clickhouse-connect connects to it as to a ClickHouse server; curl-style requests
(urllib here) get what ClickHouse would send; the read-only guarantees hold on
every path; ``vigil sql`` uses the same interface while the store is in use.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest
from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError

from sinks.query_server import MAX_QUERY_BYTES, QUERY_USER
from tests.integration.served_store import PASSWORD, ServedStore, served_demo_store
from tests.integration.test_cli import REPO, vigil

pytestmark = pytest.mark.integration

DENIES = "SELECT count() FROM decisions_unique WHERE decision = 'deny'"
OWN_HEADERS = {"X-ClickHouse-User": QUERY_USER, "X-ClickHouse-Key": PASSWORD}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedStore]:
    with served_demo_store(tmp_path_factory.mktemp("served")) as store:
        yield store


def _get(
    served: ServedStore,
    fields: dict[str, str],
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    path: str = "",
) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(
        f"{served.url}{path}?{urlencode(fields)}",
        data=body,
        headers=headers
        if headers is not None
        else {"X-ClickHouse-User": QUERY_USER, "X-ClickHouse-Key": PASSWORD},
        method="POST" if body is not None else "GET",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_clickhouse_connect_queries_with_parameters(served: ServedStore) -> None:
    client = served.client()
    try:
        result = client.query(
            "SELECT decision, count() AS n FROM decisions_unique WHERE decision = {decision:String} "
            "AND model_id IN {models:Array(String)} GROUP BY decision",
            parameters={"decision": "deny", "models": ["fraud-v3", "legacy-scorer", ""]},
        )
        expected = served.owner_rows(
            "SELECT decision, count() FROM decisions_unique WHERE decision = 'deny' "
            "AND model_id IN ('fraud-v3', 'legacy-scorer', '') GROUP BY decision"
        )
        assert result.column_names == ("decision", "n")
        assert result.result_rows == expected
        assert expected[0][1] >= 5  # the demo's incidents
        assert client.command(DENIES) == served.owner_rows(DENIES)[0][0]
        frame = client.query_df("SELECT code, count() AS n FROM rejected_unique GROUP BY code ORDER BY code")
        assert sorted(frame["code"]) == ["invalid_json", "missing_field", "oversize", "unknown_type"]
        assert client.server_version
    finally:
        client.close()


def test_clickhouse_connect_reads_typed_columns(served: ServedStore) -> None:
    client = served.client()
    try:
        [(ts, features, roles)] = client.query(
            "SELECT ts, features, roles FROM events_unique WHERE model_id = {m:String} "
            "ORDER BY ts, event_id LIMIT 1",
            parameters={"m": "fraud-v3"},
        ).result_rows
        [(owner_ts, owner_features, owner_roles)] = served.owner_rows(
            "SELECT ts, features, roles FROM events_unique WHERE model_id = 'fraud-v3' "
            "ORDER BY ts, event_id LIMIT 1"
        )
        assert (ts, features, roles) == (owner_ts, owner_features, owner_roles)
        assert "amount" in features
    finally:
        client.close()


def test_a_wrong_password_is_refused_as_clickhouse_refuses_it(served: ServedStore) -> None:
    with pytest.raises((DatabaseError, OperationalError), match="516"):
        served.client(password="guess")
    status, headers, body = _get(
        served, {"query": "SELECT 1"}, headers={"X-ClickHouse-User": QUERY_USER, "X-ClickHouse-Key": "guess"}
    )
    assert status == 401
    assert headers["X-ClickHouse-Exception-Code"] == "516"
    assert body.startswith(b"Code: 516. DB::Exception:")
    assert _get(served, {"query": "SELECT 1"}, headers={})[0] == 401  # nobody: the default user


def test_clickhouse_connect_cannot_write_or_reach_outside(served: ServedStore) -> None:
    secret = served.data_dir / "secret.txt"
    secret.write_text("never leaves this file")
    client = served.client()
    try:
        for statement in ("DROP TABLE events", "INSERT INTO rejected (rejected_id) VALUES ('x')"):
            with pytest.raises(DatabaseError, match="164"):
                client.command(statement)
        with pytest.raises(DatabaseError, match=r"function file\(\)"):
            client.query(f"SELECT file('{secret}')")
        with pytest.raises(DatabaseError, match="readonly"):
            client.query("SELECT 1", settings={"readonly": 0})
        assert client.command("SELECT count() FROM events") > 0
    finally:
        client.close()
    with pytest.raises(DatabaseError, match="164"):
        served.client().insert("rejected", [["x"]], column_names=["rejected_id"])


def test_curl_style_requests_get_what_clickhouse_sends(served: ServedStore) -> None:
    assert _get(served, {}, path="ping", headers={}) == (
        200,
        _get(served, {}, path="ping", headers={})[1],
        b"Ok.\n",
    )
    status, headers, body = _get(served, {"query": DENIES})
    assert (status, headers["X-ClickHouse-Format"]) == (200, "TabSeparated")
    denies = served.owner_rows(DENIES)[0][0]
    assert body == f"{denies}\n".encode()

    basic = base64.b64encode(f"{QUERY_USER}:{PASSWORD}".encode()).decode()
    status, headers, body = _get(
        served,
        {"default_format": "JSONEachRow", "param_d": "deny"},
        body=b"SELECT decision, count() AS n FROM decisions_unique WHERE decision = {d:String} GROUP BY 1",
        headers={"Authorization": f"Basic {basic}"},
    )
    assert status == 200
    assert headers["Content-Type"].startswith("application/x-ndjson")
    assert json.loads(body) == {"decision": "deny", "n": denies}

    status, _, body = _get(served, {"query": "SELECT 1 AS one, 'a\tb' AS two FORMAT JSON"})
    assert json.loads(body)["data"] == [{"one": 1, "two": "a\tb"}]
    status, _, body = _get(served, {"query": "SELECT 1 AS one, 'x' AS two FORMAT CSVWithNames"})
    assert body == b'"one","two"\n1,"x"\n'
    status, _, body = _get(served, {"query": "SELECT 1 AS one", "default_format": "TabSeparatedWithNames"})
    assert body == b"one\n1\n"
    status, headers, body = _get(served, {"query": "SELECT toUInt16(258) AS n FORMAT RowBinary"})
    assert (body, headers["Content-Type"]) == (b"\x02\x01", "application/octet-stream")


SENT = "it's\\t\\\\"


def test_bound_values_arrive_as_clickhouse_parses_them(served: ServedStore) -> None:
    """``param_`` values are in ClickHouse's escaped text form: a client escapes, the engine unescapes."""
    status, _, body = _get(
        served,
        {"query": "SELECT length({s:String}) AS n, {s:String} AS s FORMAT JSONEachRow", "param_s": SENT},
    )
    assert status == 200, body
    assert json.loads(body) == {"n": 6, "s": "it's\t\\"}


def test_refusals_carry_clickhouse_codes_and_statuses(served: ServedStore) -> None:
    status, headers, body = _get(served, {"query": "DROP TABLE events"})
    assert (status, headers["X-ClickHouse-Exception-Code"]) == (403, "164")
    assert b"DROP statements" in body
    status, headers, _ = _get(served, {"query": "SELECT * FROM no_such_table"})
    assert (status, headers["X-ClickHouse-Exception-Code"]) == (404, "60")
    status, headers, _ = _get(served, {"query": "SELEKT 1"})
    assert (status, headers["X-ClickHouse-Exception-Code"]) == (400, "62")
    status, headers, body = _get(served, {"query": "SELECT 1", "allow_ddl": "1"})
    assert (status, headers["X-ClickHouse-Exception-Code"]) == (403, "164")
    assert b"allow_ddl" in body
    status, headers, _ = _get(served, {"query": "SELECT 1", "database": "system"})
    assert (status, headers["X-ClickHouse-Exception-Code"]) == (404, "81")
    assert _get(served, {"query": "SELECT 1"}, path="replicas_status")[0] == 501


def test_allowed_settings_apply_to_one_request_only(served: ServedStore) -> None:
    limited = {
        "query": "SELECT number FROM numbers(10)",
        "max_result_rows": "3",
        "result_overflow_mode": "break",
        "max_block_size": "2",
    }
    status, _, body = _get(served, limited)
    assert status == 200
    assert 3 <= len(body.splitlines()) < 10  # "break" stops at a block boundary
    status, _, body = _get(served, {"query": "SELECT number FROM numbers(10)"})
    assert len(body.splitlines()) == 10


def test_vigil_sql_goes_through_the_interface_while_the_store_is_in_use(served: ServedStore) -> None:
    result = vigil(served.data_dir, "sql", DENIES, "--format", "TSV")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{served.owner_rows(DENIES)[0][0]}\n"
    refused = vigil(served.data_dir, "sql", "DROP TABLE events")
    assert refused.returncode != 0
    assert "DROP statements" in refused.stderr


def test_the_endpoint_file_names_the_user_and_password(served: ServedStore, tmp_path: Path) -> None:
    endpoint = json.loads((served.data_dir / "clickhouse" / "query-endpoint.json").read_text())
    assert (endpoint["url"], endpoint["user"], endpoint["password"]) == (served.url, QUERY_USER, PASSWORD)


@pytest.mark.parametrize(("key", "status", "code"), [("guess", 401, "516"), (PASSWORD, 403, "164")])
def test_a_streamed_insert_is_refused_after_the_credentials(
    served: ServedStore, key: str, status: int, code: str
) -> None:
    request = urllib.request.Request(
        served.url,
        data=iter([b"INSERT INTO rejected (rejected_id) FORMAT TSV\n", b"x\n"]),
        headers={"X-ClickHouse-User": QUERY_USER, "X-ClickHouse-Key": key},
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    assert (refused.value.code, refused.value.headers["X-ClickHouse-Exception-Code"]) == (status, code)
    assert served.owner_rows("SELECT count() FROM rejected WHERE rejected_id = 'x'") == [(0,)]


def test_an_oversized_query_is_refused_whole(served: ServedStore) -> None:
    status, headers, body = _get(served, {}, body=b"SELECT 1 -- " + b"x" * MAX_QUERY_BYTES)
    assert (status, headers["X-ClickHouse-Exception-Code"]) == (400, "62")
    assert b"Max query size exceeded" in body


def test_a_taken_port_is_a_one_line_error(served: ServedStore, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    env.update(VIGIL_DATA_DIR=str(tmp_path), VIGIL_QUERY_PORT=str(served.port), PYTHONPATH=str(REPO))
    result = subprocess.run(
        [sys.executable, "-m", "cli", "demo", "--events", "20"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 1
    assert f"Error: cannot serve queries on 127.0.0.1:{served.port}" in result.stderr
    assert "Traceback" not in result.stderr
