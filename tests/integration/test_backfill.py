"""A backfill through the real broker: ``vigil publish --timestamp event`` sends events three
days old; the worker's topics keep the broker's time, so only the key decides. With a key
that may backfill they are verified; with an ordinary key they are stale."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta

import orjson
import pytest
import yaml
from confluent_kafka import TIMESTAMP_LOG_APPEND_TIME

from tests.integration.conftest import REPO, WorkerEnv, scoring_event

pytestmark = pytest.mark.integration

LIVE_SECRET = "hex:" + (b"backfill-test-live-secret-0123456789").hex()
BACKFILL_SECRET = "hex:" + (b"backfill-test-history-secret-012345").hex()


def _publish(env: WorkerEnv, lines: list[bytes], key_id: str) -> subprocess.CompletedProcess[str]:
    path = env.data_dir / f"{key_id}.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "cli",
            "publish",
            "--input",
            path.name,
            "--key-id",
            key_id,
            "--timestamp",
            "event",
        ],
        env=env.env | {"VIGIL_KEYS_FILE": str(env.data_dir / "keys.yaml"), "PYTHONPATH": str(REPO)},
        cwd=env.data_dir,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


def test_a_backfill_key_makes_old_events_verified_and_an_ordinary_key_leaves_them_stale(
    worker_env: WorkerEnv,
) -> None:
    keys = {
        "keys": [
            {"key_id": "scoring-live", "secret": LIVE_SECRET, "sources": ["scoring-api"]},
            {
                "key_id": "scoring-history",
                "secret": BACKFILL_SECRET,
                "sources": ["scoring-api"],
                "backfill": True,
            },
        ]
    }
    (worker_env.data_dir / "keys.yaml").write_text(yaml.safe_dump(keys))
    worker_env.extra["VIGIL_KEYS_FILE"] = str(worker_env.data_dir / "keys.yaml")
    worker_env.start_worker()  # creates the topics with the broker's time before anything is sent
    worker_env.wait_until("SELECT count() + 1 FROM events_unique", 1)

    three_days_ago = datetime.now(UTC) - timedelta(days=3)
    history = [
        orjson.dumps(scoring_event(f"{key}-{n}", n, three_days_ago + timedelta(minutes=n), {"x": float(n)}))
        for key in ("scoring-history", "scoring-live")
        for n in range(5)
    ]
    _publish(worker_env, history[:5], "scoring-history")
    _publish(worker_env, history[5:], "scoring-live")

    worker_env.wait_until("SELECT count() FROM events_unique", 10)
    verdicts = worker_env.sql(
        "SELECT key_id, verified, verify_reason, count() FROM events_unique GROUP BY ALL ORDER BY key_id"
    )
    assert verdicts == [["scoring-history", "true", "backfill", "5"], ["scoring-live", "false", "stale", "5"]]
    stored_ts = worker_env.sql("SELECT min(ts) FROM events_unique")[0][0]
    assert stored_ts.startswith(three_days_ago.strftime("%Y-%m-%d"))

    arrived = worker_env.read(worker_env.topic("ai.inference"), 10)
    assert {r.timestamp()[0] for r in arrived} == {TIMESTAMP_LOG_APPEND_TIME}
    assert (
        min(r.timestamp()[1] for r in arrived) > (datetime.now(UTC) - timedelta(hours=1)).timestamp() * 1000
    )
