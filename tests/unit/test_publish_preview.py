"""vigil publish --dry-run: what would be sent, signed and routed, with no broker."""

from __future__ import annotations

from pathlib import Path

import orjson
from click.testing import CliRunner

from cli.main import main
from identity.signing import sign_document
from tests.factories import KEYS, inference_doc, key_entries, write_keyfile


def test_a_dry_run_prints_each_signed_message_and_reports_the_rest(tmp_path: Path) -> None:
    keys = write_keyfile(tmp_path / "keys.yaml", key_entries())
    event = inference_doc()
    lines = (
        orjson.dumps(event)
        + b"\n"
        + b'{"type": "nonsense", "source": "checkout-api", "principal": {"id": "svc-checkout"}}\n'
        + b"[1, 2]\n"
    )
    result = CliRunner().invoke(
        main,
        ["publish", "--dry-run", "--input", "-"],
        input=lines,
        env={
            "VIGIL_KEYS_FILE": str(keys),
            "VIGIL_DATA_DIR": str(tmp_path),
            "VIGIL_KAFKA_BROKERS": "nowhere:1",
        },
    )
    assert result.exit_code == 1
    [shown] = [orjson.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert (shown["line"], shown["topic"], shown["key"]) == (1, "ai.inference", event["model_id"])
    key = KEYS[event["source"]]
    assert orjson.loads(shown["value"]) == sign_document(event, key.key_id, key.secret)
    assert "not sent: line 2: unknown_type: message: Input tag 'nonsense'" in result.stderr
    assert "not sent: line 3: not a JSON object" in result.stderr
    assert "1 messages shown, nothing sent" in result.stderr


def test_a_line_of_the_wrong_shape_is_reported_with_the_fault_and_the_rest_still_go(tmp_path: Path) -> None:
    keys = write_keyfile(tmp_path / "keys.yaml", key_entries())
    lines = [orjson.dumps({**inference_doc(), "principal": 42}), orjson.dumps(inference_doc())]
    result = CliRunner().invoke(
        main,
        ["publish", "--dry-run", "--input", "-"],
        input=b"\n".join(lines) + b"\n",
        env={
            "VIGIL_KEYS_FILE": str(keys),
            "VIGIL_DATA_DIR": str(tmp_path),
            "VIGIL_KAFKA_BROKERS": "nowhere:1",
        },
    )
    assert result.exit_code == 1
    assert "not sent: line 1: wrong_type: inference.principal: Input should be an object" in result.stderr
    assert [orjson.loads(line)["line"] for line in result.stdout.splitlines()] == [2]
