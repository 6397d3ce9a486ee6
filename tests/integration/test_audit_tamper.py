"""Tampering with a verified ledger in chDB, every way, and `vigil audit verify` catching it.

One store is built through the real CLI (a demo run and two `vigil run`s, so the
ledger also resumes across restarts) and copied for each test; the test then
rewrites the copy with plain SQL, as anyone with write access to ClickHouse could,
and runs `vigil audit verify` on it in-process.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner, Result

from audit.canonical import chain_hash, record_hash, timestamp
from audit.config import export_dir, published_key_path
from cli.main import main
from schemas.audit import LedgerRow
from sinks.clickhouse import connect
from vigil.demo import DemoTraffic, write_demo_keys
from vigil.settings import Settings

pytestmark = pytest.mark.integration

STREAM = "stdin:0"


def _env(data_dir: Path) -> dict[str, str]:
    return {
        "VIGIL_DATA_DIR": str(data_dir),
        "VIGIL_AUDIT_CHECKPOINT_ENTRIES": "40",
        "VIGIL_LOG_LEVEL": "WARNING",
    }


def vigil(data_dir: Path, *args: str, stdin: bytes | None = None) -> Result:
    return CliRunner().invoke(main, list(args), input=stdin, env=_env(data_dir), catch_exceptions=False)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("audit-template")
    assert vigil(data_dir, "demo", "--events", "150").exit_code == 0
    secrets = write_demo_keys(data_dir / "keys.yaml")
    for seed in (1, 2):
        lines = b"\n".join(DemoTraffic(secrets, events=120, seed=seed).lines()) + b"\n"
        result = vigil(data_dir, "run", "--input", "-", stdin=lines)
        assert result.exit_code == 0, result.output
    return data_dir


@pytest.fixture
def data_dir(template: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "data"
    for suffix in ("", "-keys", "-checkpoints"):  # the store, its signing key, its exported checkpoints
        shutil.copytree(f"{template}{suffix}", f"{copy}{suffix}", symlinks=True)
    return copy


@pytest.fixture
def sql(data_dir: Path) -> Iterator[Any]:
    """A client on the copy, closed before the test runs the CLI."""
    client = connect(f"chdb://{data_dir / 'clickhouse'}")
    yield client
    client.close()


def rows(client: Any, where: str) -> list[LedgerRow]:
    columns = ", ".join(LedgerRow._fields)
    found = client.query(f"SELECT {columns} FROM audit_ledger WHERE {where} ORDER BY seq").result_rows
    return [LedgerRow(*r) for r in found]


def mutate(client: Any, statement: str) -> None:
    client.command(f"{statement} SETTINGS mutations_sync = 2")


def verify(data_dir: Path, sql_client: Any, *args: str) -> Result:
    sql_client.close()  # the CLI opens the store itself
    return vigil(data_dir, "audit", "verify", *args)


def problem_lines(result: Result) -> list[str]:
    return [line.strip() for line in result.output.splitlines() if line.startswith("    ")]


def test_an_untouched_ledger_verifies(data_dir: Path, sql: Any) -> None:
    streams = {r[0] for r in sql.query("SELECT DISTINCT stream FROM audit_ledger").result_rows}
    assert streams == {"demo:0", STREAM}
    assert (
        sql.query(f"SELECT count() FROM audit_checkpoints WHERE stream = '{STREAM}'").result_rows[0][0] >= 2
    )
    result = verify(data_dir, sql)
    assert result.exit_code == 0, result.output
    assert "verified: 2 streams" in result.output
    assert "FAILED" not in result.output
    assert "tables not checked" not in result.output


def test_a_changed_decision_is_named(data_dir: Path, sql: Any) -> None:
    target = rows(
        sql, f"stream = '{STREAM}' AND kind = 'decision' AND record LIKE '%\"decision\":\"deny\"%'"
    )[0]
    mutate(
        sql,
        'ALTER TABLE audit_ledger UPDATE record = replaceOne(record, \'"decision":"deny"\', '
        f"'\"decision\":\"allow\"') WHERE stream = '{STREAM}' AND seq = {target.seq}",
    )
    result = verify(data_dir, sql)
    assert result.exit_code == 1
    assert problem_lines(result)[0].startswith(
        f"modified: {STREAM} seq {target.seq}: decision {target.record_id}"
    )


def test_a_deleted_entry_is_named(data_dir: Path, sql: Any) -> None:
    mutate(sql, f"ALTER TABLE audit_ledger DELETE WHERE stream = '{STREAM}' AND seq = 77")
    result = verify(data_dir, sql, "--no-tables")
    assert result.exit_code == 1
    assert problem_lines(result)[0].startswith(f"deleted: {STREAM} seq 77: 1 entry is missing")


def test_a_forged_entry_is_named(data_dir: Path, sql: Any) -> None:
    genuine = rows(sql, f"stream = '{STREAM}' AND seq = 50")[0]
    record = orjson.loads(genuine.record) | {"principal_id": "someone-innocent"}
    forged = genuine._replace(record=orjson.dumps(record, option=orjson.OPT_SORT_KEYS).decode())
    digest = record_hash(forged.record)
    link = chain_hash(
        forged.prev_hash,
        STREAM,
        forged.kind,
        forged.record_id,
        forged.event_id,
        forged.source_offset,
        digest,
        timestamp(forged.appended_at),
    )
    sql.insert(
        "audit_ledger",
        [forged._replace(record_hash=digest, chain_hash=link)],
        column_names=list(LedgerRow._fields),
    )
    result = verify(data_dir, sql, "--no-tables")
    assert result.exit_code == 1
    assert problem_lines(result) == [
        f"inserted: {STREAM} seq 50: an extra entry {genuine.kind} {genuine.record_id} "
        f"(event {genuine.event_id}) is not part of the chain"
    ]


def test_two_swapped_entries_are_named(data_dir: Path, sql: Any) -> None:
    a, b = rows(sql, f"stream = '{STREAM}' AND seq IN (60, 64)")
    mutate(sql, f"ALTER TABLE audit_ledger DELETE WHERE stream = '{STREAM}' AND seq IN (60, 64)")
    sql.insert("audit_ledger", [a._replace(seq=64), b._replace(seq=60)], column_names=list(LedgerRow._fields))
    result = verify(data_dir, sql, "--no-tables")
    assert result.exit_code == 1
    assert problem_lines(result)[0].startswith(f"reordered: {STREAM} seq 60..64: 5 entries are out of order")


def test_a_dropped_tail_is_caught_by_the_exported_checkpoints(data_dir: Path, sql: Any) -> None:
    last = sql.query(f"SELECT max(seq) FROM audit_ledger WHERE stream = '{STREAM}'").result_rows[0][0]
    cut = last - 30
    # A careful attacker removes the checkpoints that cover the tail as well.
    mutate(sql, f"ALTER TABLE audit_ledger DELETE WHERE stream = '{STREAM}' AND seq > {cut}")
    mutate(sql, f"ALTER TABLE audit_checkpoints DELETE WHERE stream = '{STREAM}' AND seq > {cut}")
    result = verify(data_dir, sql, "--no-tables")
    assert result.exit_code == 1
    lines = problem_lines(result)
    assert any(line.startswith(f"checkpoint-deleted: {STREAM} seq {last}") for line in lines)
    truncated = next(line for line in lines if line.startswith("truncated"))
    assert truncated.startswith(f"truncated: {STREAM} seq {cut + 1}..{last}: the ledger ends at seq {cut}")
    assert str(export_dir(Settings(data_dir=data_dir))) in truncated  # named the export that proves it


def test_a_checkpoint_rewritten_without_the_key_is_caught(data_dir: Path, sql: Any) -> None:
    (checkpoint_seq,) = sql.query(
        f"SELECT min(seq) FROM audit_checkpoints WHERE stream = '{STREAM}'"
    ).result_rows[0]
    other = rows(sql, f"stream = '{STREAM}' AND seq = {checkpoint_seq - 3}")[0]
    mutate(
        sql,
        f"ALTER TABLE audit_checkpoints UPDATE chain_hash = '{other.chain_hash}' "
        f"WHERE stream = '{STREAM}' AND seq = {checkpoint_seq}",
    )
    result = verify(data_dir, sql, "--no-tables")
    assert result.exit_code == 1
    assert problem_lines(result)[0].startswith(
        f"forged-checkpoint: {STREAM} seq {checkpoint_seq}: checkpoint in audit_checkpoints: "
        "its signature does not verify"
    )


def test_a_changed_decisions_row_is_caught_against_the_ledger(data_dir: Path, sql: Any) -> None:
    event_id = rows(
        sql, f"stream = '{STREAM}' AND kind = 'decision' AND record LIKE '%\"decision\":\"deny\"%'"
    )[0].event_id
    mutate(sql, f"ALTER TABLE decisions UPDATE decision = 'allow' WHERE event_id = '{event_id}'")
    result = verify(data_dir, sql)
    assert result.exit_code == 1
    assert f"FAILED table decisions: table-modified: decision {event_id}: the row differs" in result.output
    assert "ok     stdin:0" in result.output  # the ledger itself is intact


def test_a_proof_checks_with_the_public_key_alone(data_dir: Path, sql: Any, tmp_path: Path) -> None:
    event_id = rows(sql, f"stream = '{STREAM}' AND kind = 'finding'")[0].event_id
    sql.close()
    proof = vigil(data_dir, "audit", "proof", event_id)
    assert proof.exit_code == 0, proof.output
    auditor = tmp_path / "auditor"
    auditor.mkdir()
    shutil.copy(published_key_path(Settings(data_dir=data_dir)), auditor / "vigil.pub")
    (auditor / "proof.json").write_text(proof.output)
    checked = CliRunner().invoke(
        main,
        ["audit", "check-proof", str(auditor / "proof.json"), "--public-key", str(auditor / "vigil.pub")],
        env={"VIGIL_DATA_DIR": str(auditor)},
    )
    assert checked.exit_code == 0, checked.output
    assert checked.output.startswith("valid: decision (deny)")
    assert "finding" in checked.output


def test_verify_reads_through_the_query_server_while_the_store_is_in_use(data_dir: Path, sql: Any) -> None:
    from vigil.runtime import open_store
    from vigil.settings import Settings

    mutate(sql, f"ALTER TABLE audit_ledger DELETE WHERE stream = '{STREAM}' AND seq = 12")
    sql.close()
    owner = open_store(Settings(data_dir=data_dir))
    try:
        result = vigil(data_dir, "audit", "verify", "--stream", STREAM)
    finally:
        owner.close()
    assert result.exit_code == 1
    assert problem_lines(result)[0].startswith(f"deleted: {STREAM} seq 12")


def test_an_unknown_stream_is_an_error_not_a_clean_bill(data_dir: Path, sql: Any) -> None:
    result = verify(data_dir, sql, "--stream", "stdin:7")
    assert result.exit_code == 2
    assert "no stream 'stdin:7'" in result.output


def test_a_wiped_trail_does_not_verify(data_dir: Path, sql: Any) -> None:
    last = sql.query(f"SELECT max(seq) FROM audit_ledger WHERE stream = '{STREAM}'").result_rows[0][0]
    for table in ("audit_ledger", "audit_checkpoints"):
        sql.command(f"TRUNCATE TABLE {table}")
    shutil.rmtree(export_dir(Settings(data_dir=data_dir)))
    bare = verify(data_dir, sql, "--no-tables")
    assert bare.exit_code == 1
    assert "FAILED ledger: missing-trail: no stream, no entry and no checkpoint" in bare.output
    expecting = vigil(data_dir, "audit", "verify", "--no-tables", "--expect-seq", f"{STREAM}={last}")
    assert expecting.exit_code == 1
    assert f"FAILED {STREAM}: missing-trail: the ledger reaches seq 0, at least {last} expected" in (
        expecting.output
    )
    counted = vigil(data_dir, "audit", "verify", "--no-tables", "--expect-streams", "2")
    assert counted.exit_code == 1
    assert "0 stream(s) found, at least 2 expected" in counted.output


def test_expectations_from_an_independent_copy_pass_on_an_intact_trail(data_dir: Path, sql: Any) -> None:
    last = sql.query(f"SELECT max(seq) FROM audit_ledger WHERE stream = '{STREAM}'").result_rows[0][0]
    result = verify(data_dir, sql, "--expect-streams", "2", "--expect-seq", f"{STREAM}={last}")
    assert result.exit_code == 0, result.output


def test_a_store_that_decided_nothing_verifies_only_when_allowed(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    write_demo_keys(empty / "keys.yaml")
    assert vigil(empty, "run", "--input", "-", stdin=b"").exit_code == 0  # a store and its key, no events
    assert vigil(empty, "audit", "verify").exit_code == 1
    allowed = vigil(empty, "audit", "verify", "--allow-empty")
    assert allowed.exit_code == 0, allowed.output
