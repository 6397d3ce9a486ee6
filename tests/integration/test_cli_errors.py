"""Every mistake a user can make ends ``vigil`` with one line, never a traceback.

Each case runs the command as a user would (a subprocess in a working directory of
its own) and checks the exit status (2: the user's call or configuration, 1: a
failure of something it depends on), that exactly one ``Error:`` line says what is
wrong and what to do, and that no Python traceback reaches the terminal.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from clickhouse_connect.driver.exceptions import ClickHouseError

from sinks.clickhouse import StoreLockedError
from vigil.demo import write_demo_keys
from vigil.runtime import open_store
from vigil.settings import Settings

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
UNREACHABLE = "127.0.0.1:1"
"""Nothing listens on port 1: connections are refused at once."""


def vigil(cwd: Path, *args: str, stdin: bytes = b"", **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        input=stdin.decode(),
        capture_output=True,
        text=True,
        env={**clean, "PYTHONPATH": str(REPO), **env},
        cwd=cwd,
        timeout=120,
    )


def said(result: subprocess.CompletedProcess[str], status: int) -> str:
    """The one error line, once the exit status and the absence of a traceback are checked."""
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == status, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, result.stderr
    return errors[0]


def test_a_malformed_config_file_names_the_file_and_the_place(tmp_path: Path) -> None:
    (tmp_path / "vigil.toml").write_text("data_dir = \n[kafka\n")
    line = said(vigil(tmp_path, "run", "--input", "-"), 2)
    assert "vigil.toml: not valid TOML" in line
    assert "line 1, column 12" in line
    assert "VIGIL_CONFIG" in line


def test_an_invalid_setting_names_the_setting_and_its_variable(tmp_path: Path) -> None:
    (tmp_path / "vigil.toml").write_text("colour = 'blue'\n[kafka]\nbatch_size = 0\n")
    line = said(vigil(tmp_path, "worker"), 2)
    assert "kafka.batch_size (VIGIL_KAFKA_BATCH_SIZE): Input should be greater than or equal to 1" in line
    assert "colour is not a Vigil setting" in line
    missing = said(vigil(tmp_path, "alerts", "list", VIGIL_CONFIG="elsewhere.toml"), 2)
    assert "VIGIL_CONFIG names elsewhere.toml, which does not exist" in missing


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "detectors.yaml: No such file or directory"),
        ("models: [\n", "detectors.yaml: expected the node content"),
        ('models:\n  "*":\n    colour: blue\n', "models.*.colour: Extra inputs are not permitted"),
        (
            "models:\n  fraud-v3:\n    features: {numeric: {detector: nope}}\n",
            "models.fraud-v3.features.numeric: unknown detector 'nope'",
        ),
    ],
)
def test_detector_configuration_problems(tmp_path: Path, content: str | None, expected: str) -> None:
    write_demo_keys(tmp_path / "vigil-data" / "keys.yaml")
    if content is not None:
        (tmp_path / "detectors.yaml").write_text(content)
    line = said(vigil(tmp_path, "run", "--input", "-", VIGIL_DETECTORS_CONFIG="detectors.yaml"), 2)
    assert expected in line
    assert "VIGIL_DETECTORS_CONFIG" in line


def test_a_routing_file_with_problems_lists_them_on_one_line(tmp_path: Path) -> None:
    write_demo_keys(tmp_path / "vigil-data" / "keys.yaml")
    (tmp_path / "alerting.yaml").write_text("route: {receiver: x}\nreceivers: [{name: x, slak: {}}]\n")
    line = said(vigil(tmp_path, "run", "--input", "-", VIGIL_ALERTING_CONFIG="alerting.yaml"), 2)
    assert "alerting.yaml: invalid alerting configuration (1 problem(s)); receivers[0].slak:" in line
    assert "VIGIL_ALERTING_CONFIG" in line


def test_a_missing_key_file_says_which_and_what_to_set(tmp_path: Path) -> None:
    line = said(vigil(tmp_path, "run", "--input", "-", stdin=b"{}\n"), 2)
    assert "vigil-data/keys.yaml: cannot read key file" in line
    assert "VIGIL_KEYS_FILE" in line


def test_worker_and_publish_without_a_broker_fail_fast_in_one_line(tmp_path: Path) -> None:
    write_demo_keys(tmp_path / "vigil-data" / "keys.yaml")
    worker = said(vigil(tmp_path, "worker", VIGIL_KAFKA_BROKERS=UNREACHABLE), 1)
    assert f"cannot reach Kafka at {UNREACHABLE}" in worker
    assert "VIGIL_KAFKA_BROKERS" in worker
    (tmp_path / "events.jsonl").write_text('{"type": "inference"}\n')
    publish = vigil(
        tmp_path, "publish", "--input", "events.jsonl", "--raw", "t", VIGIL_KAFKA_BROKERS=UNREACHABLE
    )
    assert f"cannot reach Kafka at {UNREACHABLE}" in said(publish, 1)
    assert "rdkafka" not in publish.stderr


def test_demo_refuses_a_key_file_that_is_not_its_own(tmp_path: Path) -> None:
    real = tmp_path / "keys.yaml"
    real.write_text(
        "keys:\n  - key_id: checkout-2026\n    alg: hmac-sha256\n"
        f"    secret: 'hex:{'ab' * 32}'\n    sources: [checkout-api]\n"
    )
    line = said(vigil(tmp_path, "demo", "--events", "20", VIGIL_KEYS_FILE=str(real)), 2)
    assert f"{real} has no demo key for checkout-api" in line
    assert "a data directory of its own" in line


def test_demo_runs_again_only_from_a_fresh_store(tmp_path: Path) -> None:
    assert vigil(tmp_path, "demo", "--events", "100").returncode == 0
    again = said(vigil(tmp_path, "demo", "--events", "100"), 2)
    assert "holds an earlier run" in again
    assert "--fresh" in again
    fresh = vigil(tmp_path, "demo", "--events", "100", "--fresh")
    assert fresh.returncode == 0, fresh.stderr
    printed = next(line for line in fresh.stdout.splitlines() if "events stored" in line)
    stored = printed.split("events stored")[0].split()[-1]
    counted = vigil(tmp_path, "sql", "SELECT count() FROM events_unique", "--format", "TSV")
    assert counted.stdout.strip() == stored


@pytest.mark.parametrize(
    "command",
    [
        ("sql", "SELECT count() FROM events_unique"),
        ("alerts", "list"),
        ("silence", "list"),
        ("audit", "verify"),
        ("policy", "replay", "--candidate", str(REPO / "policies")),
        ("controls", "report", "--framework", "eu-ai-act"),
    ],
)
def test_reading_commands_never_create_a_store(tmp_path: Path, command: tuple[str, ...]) -> None:
    line = said(vigil(tmp_path, *command), 2)
    assert f"no Vigil store in {tmp_path.resolve() / 'vigil-data' / 'clickhouse'}" in line
    assert "VIGIL_DATA_DIR" in line
    assert not (tmp_path / "vigil-data").exists()


@pytest.mark.parametrize(
    "command",
    [
        ("silence", "add", "--match", "model=x", "--reason", "r", "--for"),
        ("policy", "replay", "--candidate", str(REPO / "policies"), "--since"),
        ("controls", "report", "--framework", "eu-ai-act", "--since"),
        ("audit", "verify", "--since"),
    ],
)
def test_every_duration_option_speaks_the_same_grammar(tmp_path: Path, command: tuple[str, ...]) -> None:
    line = said(vigil(tmp_path, *command, "1 fortnight"), 2)
    assert f"Invalid value for '{command[-1]}'" in line
    assert "1h30m" in line


def test_sql_while_the_owner_starts_and_stops(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "vigil-data")
    open_store(settings).close()
    stop = threading.Event()

    def owner_comes_and_goes() -> None:
        while not stop.is_set():
            try:
                open_store(settings).close()
            except (StoreLockedError, ClickHouseError):  # vigil sql has it to itself for a moment
                time.sleep(0.05)

    owner = threading.Thread(target=owner_comes_and_goes)
    owner.start()
    try:
        results = [vigil(tmp_path, "sql", "SELECT 41 + 1", "--format", "TSV") for _ in range(6)]
    finally:
        stop.set()
        owner.join()
    for result in results:
        if result.returncode == 0:
            assert result.stdout == "42\n"
        else:
            assert "if another process is starting or stopping with it" in said(result, 1)
