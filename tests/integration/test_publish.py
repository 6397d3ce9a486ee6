"""``vigil publish`` through the real broker: every line it can send arrives signed and keyed,
and each line it cannot is reported by number while the rest still go out."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime

import orjson
import pytest
import yaml

from identity.signing import sign_document
from tests.integration.conftest import REPO, WorkerEnv, scoring_event

pytestmark = pytest.mark.integration

SECRET = b"publish-integration-secret-0123456789"


def test_each_line_that_cannot_be_sent_is_reported_and_the_others_arrive(worker_env: WorkerEnv) -> None:
    keys = {"keys": [{"key_id": "scoring-1", "secret": "hex:" + SECRET.hex(), "sources": ["scoring-api"]}]}
    (worker_env.data_dir / "keys.yaml").write_text(yaml.safe_dump(keys))
    now = datetime.now(UTC)
    too_large = scoring_event("big", 3, now, {"blob": "x" * 1_200_000})
    lines = [
        orjson.dumps(scoring_event("first", 1, now, {"x": 1.0})),
        b'{"event_id": "cut-off", "type": "inf',
        orjson.dumps(too_large),
        orjson.dumps(scoring_event("last", 4, now, {"x": 2.0}, model="churn-v2")),
    ]
    (worker_env.data_dir / "events.jsonl").write_bytes(b"\n".join(lines) + b"\n")

    result = subprocess.run(
        [sys.executable, "-m", "cli", "publish", "--input", "events.jsonl"],
        env=worker_env.env
        | {"VIGIL_KEYS_FILE": str(worker_env.data_dir / "keys.yaml"), "PYTHONPATH": str(REPO)},
        cwd=worker_env.data_dir,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 1
    reported = [line for line in result.stderr.splitlines() if line.startswith("not sent:")]
    assert [line.split(":")[1].strip() for line in reported] == ["line 2", "line 3"], result.stderr
    assert "sent 2 messages" in result.stdout

    arrived = worker_env.read(worker_env.topic("ai.inference"), 2)
    documents = {orjson.loads(r.value())["event_id"]: r for r in arrived}  # type: ignore[attr-defined]
    assert set(documents) == {"first", "last"}
    assert documents["last"].key() == b"churn-v2"  # type: ignore[attr-defined]
    signed = orjson.loads(documents["first"].value())  # type: ignore[attr-defined]
    unsigned = {k: v for k, v in signed.items() if k != "signature"}
    assert sign_document(unsigned, "scoring-1", SECRET) == signed
