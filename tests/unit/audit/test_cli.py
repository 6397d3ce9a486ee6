"""`vigil audit` argument handling and its exit codes when verification cannot run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from cli.audit import Moment, audit_group


def test_times_are_iso_8601_in_utc_or_an_age() -> None:
    moment = Moment()
    assert moment.convert("2026-11-26T10:00:00", None, None) == datetime(2026, 11, 26, 10, tzinfo=UTC)
    assert moment.convert("2026-11-26T10:00:00+02:00", None, None) == datetime(2026, 11, 26, 8, tzinfo=UTC)
    age = datetime.now(UTC) - moment.convert("24h", None, None)
    assert timedelta(hours=23, minutes=59) < age < timedelta(hours=24, minutes=1)
    for text in ("1h30m", "PT1H30M"):
        age = datetime.now(UTC) - moment.convert(text, None, None)
        assert timedelta(minutes=89) < age < timedelta(minutes=91)
    with pytest.raises(click.BadParameter, match="neither an ISO 8601 time nor an age"):
        moment.convert("yesterday", None, None)


def test_verify_without_a_store_or_key_exits_2_with_the_reason(tmp_path: Path) -> None:
    runner = CliRunner()
    env = {"VIGIL_DATA_DIR": str(tmp_path)}
    no_store = runner.invoke(audit_group, ["verify"], env=env)
    assert no_store.exit_code == 2
    assert f"no Vigil store in {tmp_path.resolve() / 'clickhouse'}" in no_store.output
    (tmp_path / "clickhouse").mkdir()
    no_key = runner.invoke(audit_group, ["verify"], env=env)
    assert no_key.exit_code == 2
    assert "audit-signing.pub" in no_key.output
    assert "--public-key" in no_key.output
    no_key_yet = runner.invoke(audit_group, ["public-key"], env=env)
    assert no_key_yet.exit_code == 2
    assert "is created when a worker" in no_key_yet.output


def test_a_missing_checkpoint_directory_is_an_error_not_an_empty_set(tmp_path: Path) -> None:
    from audit.keys import load_or_create_signer

    load_or_create_signer(tmp_path / "audit-signing.key")
    (tmp_path / "clickhouse").mkdir()
    result = CliRunner().invoke(
        audit_group,
        ["verify", "--checkpoints", str(tmp_path / "nowhere")],
        env={"VIGIL_DATA_DIR": str(tmp_path)},
    )
    assert result.exit_code == 2
    assert "no checkpoint directory" in result.output


def test_check_proof_refuses_what_is_not_json(tmp_path: Path) -> None:
    from audit.keys import load_or_create_signer

    load_or_create_signer(tmp_path / "audit-signing.key")
    (tmp_path / "proof.json").write_text("{nope")
    result = CliRunner().invoke(
        audit_group, ["check-proof", str(tmp_path / "proof.json")], env={"VIGIL_DATA_DIR": str(tmp_path)}
    )
    assert result.exit_code == 2
    assert "not a proof" in result.output
