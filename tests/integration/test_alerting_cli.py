"""``vigil silence`` and ``vigil alerts`` on a store no worker holds (they write directly).

The commands run in-process through click's runner against an embedded store in a
temporary directory; with a worker owning the store they hand requests over
instead (tests/integration/test_alerting_worker.py).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner, Result

from alerting import AlertingStore
from alerting.records import AlertStateRow
from cli.main import main
from sinks.clickhouse import connect, migrate

pytestmark = pytest.mark.integration


@pytest.fixture
def vigil(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    for name in [n for n in os.environ if n.startswith("VIGIL_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("VIGIL_DATA_DIR", str(tmp_path))
    migrate_store(tmp_path)  # as a worker or `vigil run` leaves it: the commands never create one
    runner = CliRunner()

    def run(*args: str) -> Result:
        return runner.invoke(main, list(args), catch_exceptions=False)

    return run


def migrate_store(tmp_path: Path) -> None:
    client = connect(f"chdb://{(tmp_path / 'clickhouse').resolve()}")
    migrate(client)
    client.close()


def _record_alert(tmp_path: Path) -> None:
    client = connect(f"chdb://{(tmp_path / 'clickhouse').resolve()}")
    migrate(client)
    now = datetime.now(UTC)
    row = AlertStateRow(
        "a1b2c3d4e5f60718",
        "f" * 16,
        ["0123456789ab"],
        ["ml"],
        "firing",
        "high",
        "[HIGH] x on fraud-v3",
        "x",
        {"model": "fraud-v3"},
        "",
        "",
        [],
        now,
        now,
        3,
        "",
        "",
        now,
    )
    AlertingStore.over_client(client).write({"alert_states": [row]})
    client.close()


def test_silence_add_list_expire(vigil) -> None:  # type: ignore[no-untyped-def]
    added = vigil(
        "silence",
        "add",
        "--match",
        "model=fraud-v3",
        "--match",
        'stage=~"detector|policy"',
        "--for",
        "2h",
        "--reason",
        "retraining",
        "--by",
        "dana",
    )
    assert added.exit_code == 0, added.output
    silence_id = added.output.split()[1]
    listed = vigil("silence", "list")
    assert silence_id in listed.output
    assert 'model="fraud-v3" stage=~"detector|policy"' in listed.output
    assert "dana" in listed.output
    [as_json] = orjson.loads(vigil("silence", "list", "--output", "json").output)
    assert as_json["silence_id"] == silence_id
    assert as_json["matchers"] == ['model="fraud-v3"', 'stage=~"detector|policy"']
    assert as_json["reason"] == "retraining"
    assert vigil("silence", "expire", silence_id).exit_code == 0
    assert vigil("silence", "list").output.strip() == "no active silences"
    assert silence_id in vigil("silence", "list", "--all").output
    assert "already ended" in vigil("silence", "expire", silence_id).output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--match", "model", "--for", "2h", "--reason", "r"], "not a matcher"),
        (["--match", "model=x", "--for", "soon", "--reason", "r"], "not a duration"),
        (["--match", "model=x", "--for", "2h", "--reason", " "], "needs a reason"),
    ],
)
def test_bad_silences_are_refused_with_the_reason(vigil, args: list[str], message: str) -> None:  # type: ignore[no-untyped-def]
    result = vigil("silence", "add", *args)
    assert result.exit_code == 2
    assert message in result.output


def test_alerts_list_and_ack(vigil, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert "no alert or alert group nope" in vigil("alerts", "ack", "nope").output
    _record_alert(tmp_path)
    listed = vigil("alerts", "list", "--state", "firing")
    assert "a1b2c3d4e5f60718" in listed.output
    assert "0123456789ab" in listed.output
    [as_json] = orjson.loads(vigil("alerts", "list", "--output", "json").output)
    assert as_json["alert_id"] == "a1b2c3d4e5f60718"
    assert as_json["group_ids"] == ["0123456789ab"]
    assert as_json["state"] == "firing"
    assert as_json["occurrences"] == 3
    acked = vigil("alerts", "ack", "0123456789ab", "--by", "dana", "--note", "on it")
    assert acked.exit_code == 0, acked.output
    assert "acknowledged by dana" in acked.output
    assert vigil("alerts", "list", "--undelivered").output.strip() == "every notification was delivered"
