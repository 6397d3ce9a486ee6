"""The embedded ClickHouse store: migrations, replay dedupe, the read-only query server."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from schemas.records import DecisionRow, EventRow, RejectedRow
from sinks.clickhouse import connect, migrate
from sinks.query_server import ENDPOINT_FILE, QueryError, query_remote
from tests.unit.audit.memory import make
from vigil.runtime import OpenStore, open_store
from vigil.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture
def store(tmp_path: Path) -> Iterator[OpenStore]:
    opened = open_store(Settings(data_dir=tmp_path))
    yield opened
    opened.close()


def _store_dir(tmp_path: Path) -> Path:
    return tmp_path / "clickhouse"


def _rejected(n: int) -> RejectedRow:
    return RejectedRow(
        f"r{n}", datetime.now(UTC), "ai.access", 0, n, "", "invalid_json", "bad", "e30=", 2, [("ce_id", "x")]
    )


def test_migrations_apply_once(store: OpenStore) -> None:
    assert migrate(store.store.client) == []
    tables = {row[0] for row in store.store.client.query("SHOW TABLES").result_rows}
    assert {"events", "decisions", "findings", "alerts", "rejected", "events_unique"} <= tables


def test_replayed_rows_count_once_in_the_unique_views(store: OpenStore) -> None:
    rows = [_rejected(n) for n in range(5)]
    store.store.write({"rejected": rows})
    store.store.write({"rejected": rows[:3]})  # a replay after a crash
    client = store.store.client
    assert client.query("SELECT count() FROM rejected").result_rows[0][0] == 8
    assert client.query("SELECT count() FROM rejected_unique").result_rows[0][0] == 5


def test_events_of_a_trace_are_found_by_its_id(store: OpenStore) -> None:
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    rows = [make(EventRow, event_id=f"e{n}", offset=n, trace_id=trace if n % 2 else "") for n in range(6)]
    store.store.write({"events": rows})
    client = store.store.client
    found = client.query(
        "SELECT event_id FROM events_unique WHERE trace_id = {trace:String} ORDER BY event_id",
        parameters={"trace": trace},
    ).result_rows
    assert [r[0] for r in found] == ["e1", "e3", "e5"]


def test_rows_read_back_as_written(store: OpenStore) -> None:
    """Batches travel as Arrow columns: every column type must come back unchanged."""
    berlin = timezone(timedelta(hours=1))
    event = make(
        EventRow,
        event_id="e1",
        ts=datetime(2026, 3, 4, 11, 0, 0, 250_000, tzinfo=berlin),
        received_at=datetime(2026, 3, 4, 10, 0, 1, tzinfo=UTC),
        type="inference",
        roles=["analyst", "labeler"],
        verified=True,
        features={"amount": 12.5, "risk": -0.25},
        payload='{"ü":"ß"}',
        partition=3,
        offset=2**40,
        trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
        span_id="00f067aa0ba902b7",
    )
    decision = make(DecisionRow, event_id="e1", ts=event.ts, policy_ids=[], controls=["a:1"], verified=False)
    store.store.write({"events": [event], "decisions": [decision]})
    client = store.store.client
    for table, row in (("events", event), ("decisions", decision)):
        [stored] = client.query(f"SELECT {', '.join(row._fields)} FROM {table}").result_rows
        stored = [
            v.replace(tzinfo=UTC) if isinstance(v, datetime) and v.tzinfo is None else v for v in stored
        ]
        assert dict(zip(row._fields, stored, strict=True)) == row._asdict()


def test_query_server_answers_reads_and_refuses_writes(store: OpenStore, tmp_path: Path) -> None:
    store.store.write({"rejected": [_rejected(1)]})
    directory = _store_dir(tmp_path)
    assert query_remote(directory, "SELECT count() FROM rejected_unique", "TSV") == b"1\n"
    with pytest.raises(QueryError, match="DROP statements"):
        query_remote(directory, "DROP TABLE rejected", "TSV")
    with pytest.raises(QueryError, match="INSERT statements"):
        query_remote(directory, "INSERT INTO rejected (rejected_id) VALUES ('x')", "TSV")
    assert query_remote(directory, "SELECT count() FROM rejected", "TSV") == b"1\n"


def test_query_server_needs_its_password(store: OpenStore, tmp_path: Path) -> None:
    endpoint_file = _store_dir(tmp_path) / ENDPOINT_FILE
    assert endpoint_file.stat().st_mode & 0o777 == 0o600
    endpoint = json.loads(endpoint_file.read_text())
    request = urllib.request.Request(
        endpoint["url"], data=b"SELECT 1", headers={"X-ClickHouse-User": "vigil", "X-ClickHouse-Key": "guess"}
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 401
    assert refused.value.headers["X-ClickHouse-Exception-Code"] == "516"


VERTICAL_MERGE_SETTINGS = (
    "SELECT name, value FROM system.merge_tree_settings "
    "WHERE name LIKE 'vertical_merge_algorithm_min_%_to_activate' AND name NOT LIKE '%bytes%' ORDER BY name"
)


def test_the_embedded_engine_merges_column_by_column_without_changing_the_tables(
    store: OpenStore, tmp_path: Path
) -> None:
    """Wide rows merged horizontally set the peak memory of a long run (sinks/embedded_engine.py)."""
    expected = [
        ("vertical_merge_algorithm_min_columns_to_activate", "1"),
        ("vertical_merge_algorithm_min_rows_to_activate", "1"),
    ]
    assert store.store.client.query(VERTICAL_MERGE_SETTINGS).result_rows == expected
    served = query_remote(_store_dir(tmp_path), VERTICAL_MERGE_SETTINGS, "TSV").decode()
    assert [tuple(line.split("\t")) for line in served.splitlines()] == expected
    ledger = store.store.client.command("SHOW CREATE TABLE audit_ledger")
    assert "vertical_merge" not in str(ledger)


def test_a_second_process_is_told_the_store_is_locked(store: OpenStore, tmp_path: Path) -> None:
    probe = (
        "import sys; from sinks.clickhouse import connect, StoreLockedError\n"
        "try:\n    connect(sys.argv[1])\nexcept StoreLockedError as e:\n    print('locked:', e)\n"
    )
    url = f"chdb://{_store_dir(tmp_path)}"
    result = subprocess.run([sys.executable, "-c", probe, url], capture_output=True, text=True, timeout=60)
    assert result.stdout.startswith("locked:"), result.stderr


def test_closing_releases_the_store(tmp_path: Path) -> None:
    open_store(Settings(data_dir=tmp_path)).close()
    client = connect(f"chdb://{_store_dir(tmp_path)}")
    try:
        assert client.query("SELECT count() FROM events").result_rows == [(0,)]
    finally:
        client.close()
    assert not (_store_dir(tmp_path) / ENDPOINT_FILE).exists()


def test_a_new_store_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    data_dir = tmp_path / "fresh" / "data"
    opened = open_store(Settings(data_dir=data_dir))
    opened.close()
    for directory in (data_dir, data_dir / "clickhouse"):
        assert directory.stat().st_mode & 0o777 == 0o700, directory


def test_a_server_that_never_answers_is_a_clear_error_not_a_hang(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket
    import time

    from sinks import clickhouse

    monkeypatch.setattr(clickhouse, "READ_TIMEOUT_SECONDS", 1)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        port = silent.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(clickhouse.StoreUnavailableError, match=r"vigil:\*\*\*@127\.0\.0\.1") as failed:
            clickhouse.connect(f"http://vigil:s3cret-pw@127.0.0.1:{port}")
    assert time.monotonic() - started < 30
    assert "s3cret-pw" not in str(failed.value)
