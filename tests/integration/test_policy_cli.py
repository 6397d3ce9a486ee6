"""The policy owners' commands, run as in their CI: validate, test, replay, report."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import orjson
import pytest

from policies.bundle import PACK_DIR
from tests.clock import wall_now
from tests.integration.test_cli import vigil
from vigil.demo import DemoTraffic, write_demo_inventory, write_demo_keys

pytestmark = pytest.mark.integration


def _pack_copy(tmp_path: Path) -> Path:
    target = tmp_path / "pack"
    shutil.copytree(PACK_DIR, target, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    return target


def test_validate_accepts_the_bundled_pack(tmp_path: Path) -> None:
    result = vigil(tmp_path, "policy", "validate")
    assert result.returncode == 0, result.stderr
    assert "policies valid against the schema" in result.stdout


def test_validate_names_file_and_line_of_a_typo(tmp_path: Path) -> None:
    pack = _pack_copy(tmp_path)
    policy = pack / "stable/access/policy.cedar"
    text = policy.read_text()
    policy.write_text(text.replace("unless { context.mfa };", "unless { context.mfaa };"))
    line = next(
        n for n, row in enumerate(text.splitlines(), 1) if row.startswith('@id("export-requires-mfa")')
    )
    result = vigil(tmp_path, "policy", "validate", "--dir", str(pack))
    assert result.returncode == 1
    assert f"stable/access/policy.cedar:{line}:" in result.stderr
    assert "mfaa" in result.stderr


def test_policy_test_passes_then_fails_on_a_wrong_expectation(tmp_path: Path) -> None:
    passing = vigil(tmp_path, "policy", "test")
    assert passing.returncode == 0, passing.stderr
    assert "never exercised" not in passing.stdout
    pack = _pack_copy(tmp_path)
    suite = pack / "stable/access/suite.yaml"
    suite.write_text(
        suite.read_text().replace(
            "    facts: {mfa: false}\n    expect: deny", "    facts: {mfa: false}\n    expect: allow"
        )
    )
    failing = vigil(tmp_path, "policy", "test", "--dir", str(pack))
    assert failing.returncode == 1
    assert "FAIL stable/access/suite.yaml: an export without MFA is denied" in failing.stderr
    assert "expected allow" in failing.stderr
    assert "got deny by export-requires-mfa" in failing.stderr


def test_replay_shows_what_a_tighter_candidate_changes(tmp_path: Path) -> None:
    """The events were produced three days ago (a backfill) and arrived now: --since counts arrival."""
    secrets_by_source = write_demo_keys(tmp_path / "keys.yaml")
    write_demo_inventory(tmp_path / "inventory.yaml")
    produced = wall_now() - timedelta(days=3)
    traffic = DemoTraffic(secrets_by_source, events=800, seed=3, start=produced)
    lines = b"\n".join(traffic.lines()) + b"\n"
    ran = vigil(tmp_path, "run", "--input", "-", stdin=lines)
    assert ran.returncode == 0, ran.stderr
    counted = vigil(tmp_path, "sql", "SELECT count() FROM decisions_unique", "--format", "TSV")
    stored = int(counted.stdout)

    same = _pack_copy(tmp_path)
    unchanged = vigil(tmp_path, "policy", "replay", "--candidate", str(same), "--since", "24h")
    assert unchanged.returncode == 0, unchanged.stderr
    assert f"Replayed {stored} decisions" in unchanged.stdout
    assert " 0 would change" in unchanged.stdout

    tighter = tmp_path / "tighter"
    shutil.copytree(same, tighter)
    access = tighter / "stable/access/policy.cedar"
    access.write_text(
        access.read_text().replace(
            'action in [Action::"read", Action::"login"]', 'action == Action::"login"', 1
        )
    )
    changed = vigil(tmp_path, "policy", "replay", "--candidate", str(tighter), "--since", "24h")
    assert changed.returncode == 0, changed.stderr
    assert " 0 would change" not in changed.stdout
    assert "allow by read-by-analysts  ->  deny by default-deny" in changed.stdout
    assert "read-by-analysts" in changed.stdout.split("By policy:")[1]


def test_controls_report_lists_policies_and_evidence(tmp_path: Path) -> None:
    secrets_by_source = write_demo_keys(tmp_path / "keys.yaml")
    write_demo_inventory(tmp_path / "inventory.yaml")
    produced = wall_now() - timedelta(days=20)  # a backfill: older than the 7 days reported
    traffic = DemoTraffic(secrets_by_source, events=300, seed=4, start=produced)
    lines = b"\n".join(traffic.lines()) + b"\n"
    ran = vigil(tmp_path, "run", "--input", "-", stdin=lines)
    assert ran.returncode == 0, ran.stderr
    table = vigil(tmp_path, "controls", "report", "--framework", "nist-800-207", "--since", "7d")
    assert table.returncode == 0, table.stderr
    assert max(len(line) for line in table.stdout.splitlines()) <= 120
    assert "zt-unverified-denied" in table.stdout
    report = vigil(
        tmp_path, "controls", "report", "--framework", "nist-800-207", "--since", "7d", "--format", "json"
    )
    tenet6 = next(row for row in orjson.loads(report.stdout) if row["control"] == "tenet-6")
    assert "zt-unverified-denied" in tenet6["policies"]
    assert "export-requires-mfa" in tenet6["policies"]
    assert tenet6["decided"] > 0
    assert tenet6["denied"] > 0
    assert tenet6["findings"] > 0
    markdown = vigil(tmp_path, "controls", "report", "--framework", "eu-ai-act", "--format", "markdown")
    assert markdown.stdout.startswith("# EU AI Act")
    assert "| art-14 |" in markdown.stdout
    html = vigil(tmp_path, "controls", "report", "--framework", "iso-42001", "--format", "html")
    assert html.stdout.startswith("<!doctype html>")
    assert "A.10.3" in html.stdout
