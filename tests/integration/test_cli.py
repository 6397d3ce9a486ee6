"""The ``vigil`` command as a user runs it: demo, run, sql, and its error messages."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from vigil.demo import DemoTraffic, write_demo_keys
from vigil.runtime import open_store
from vigil.settings import Settings

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def vigil(data_dir: Path, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    env.update(VIGIL_DATA_DIR=str(data_dir), PYTHONPATH=str(REPO))
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        input=stdin.decode() if stdin is not None else None,
        capture_output=True,
        text=True,
        env=env,
        cwd=data_dir,
        timeout=300,
    )


def test_demo_surfaces_every_incident(tmp_path: Path) -> None:
    result = vigil(tmp_path, "demo", "--events", "1500")
    assert result.returncode == 0, result.stderr
    alerts = [line for line in result.stdout.splitlines() if line.startswith("ALERT")]
    text = "\n".join(alerts)
    assert "unverified: bad signature" in text
    assert "mallory denied fine_tune" in text
    assert "alice denied fine_tune" in text
    assert "denied export" in text
    assert "denied infer on model legacy-scorer" in text
    assert "Serving artifact differs from the registered digest" in text
    assert "no deploy registered" not in text  # the registry policy's alert is the only one
    assert "'amount' of fraud-v3 drifted" in text
    assert "4 rejected" in result.stdout
    assert "vigil sql" in result.stdout

    rejected = vigil(tmp_path, "sql", "SELECT code FROM rejected_unique ORDER BY code", "--format", "TSV")
    assert rejected.stdout.split() == ["invalid_json", "missing_field", "oversize", "unknown_type"]


def test_run_from_stdin_is_idempotent(tmp_path: Path) -> None:
    secrets_by_source = write_demo_keys(tmp_path / "keys.yaml")
    lines = b"\n".join(DemoTraffic(secrets_by_source, events=500, seed=1).lines()) + b"\n"
    first = vigil(tmp_path, "run", "--input", "-", stdin=lines)
    assert first.returncode == 0, first.stderr
    assert "507 events stored, 4 rejected" in first.stdout
    again = vigil(tmp_path, "run", "--input", "-", stdin=lines)
    assert again.returncode == 0, again.stderr
    counts = vigil(
        tmp_path,
        "sql",
        "SELECT (SELECT count() FROM events_unique), (SELECT count() FROM rejected_unique)",
        "--format",
        "TSV",
    )
    assert counts.stdout.split() == ["507", "4"]


def test_sql_reads_through_the_owner_while_the_store_is_in_use(tmp_path: Path) -> None:
    opened = open_store(Settings(data_dir=tmp_path))
    try:
        read = vigil(tmp_path, "sql", "SELECT count() FROM decisions_unique", "--format", "TSV")
        assert read.returncode == 0, read.stderr
        assert read.stdout == "0\n"
        write = vigil(tmp_path, "sql", "DROP TABLE decisions", "--write")
        assert write.returncode == 1
        assert "stop its owner first" in write.stderr
    finally:
        opened.close()


def test_sql_is_read_only_unless_asked(tmp_path: Path) -> None:
    open_store(Settings(data_dir=tmp_path)).close()
    refused = vigil(tmp_path, "sql", "DROP TABLE decisions")
    assert refused.returncode == 1
    assert "not allowed in a read-only query: drop statements" in refused.stderr.lower()


def test_json_logs_are_one_object_per_line(tmp_path: Path) -> None:
    secrets_by_source = write_demo_keys(tmp_path / "keys.yaml")
    lines = b"\n".join(DemoTraffic(secrets_by_source, events=50, seed=2).lines()) + b"\n"
    result = subprocess.run(
        [sys.executable, "-m", "cli", "run", "--input", "-"],
        input=lines,
        capture_output=True,
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")},
            "VIGIL_DATA_DIR": str(tmp_path),
            "VIGIL_LOG_FORMAT": "json",
            "VIGIL_LOG_LEVEL": "DEBUG",
            "PYTHONPATH": str(REPO),
        },
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    logged = [orjson.loads(line) for line in result.stderr.splitlines() if line.strip()]
    assert logged
    assert all({"ts", "level", "logger", "message"} <= set(entry) for entry in logged)
