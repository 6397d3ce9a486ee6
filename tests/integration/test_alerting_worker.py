"""Through the real broker: a drift burst on one model is one Slack thread, not a flood.

A ``vigil worker`` subprocess consumes signed inference events whose numeric
features all shift, shift back and shift again, so the detectors report a burst
of findings on one model and publishes the alert rows to ``ai.alerts``. A ``vigil
notifier`` beside it (with an embedded store of its own: one process per chDB
directory) routes them: every occurrence is counted, Slack receives one message
for the model, and whatever follows (edits with counts, thread replies) stays in
that message and its thread. Then ``vigil silence`` and ``vigil alerts`` talk to
the running notifier through its alerting directory.
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from identity.signing import sign_document
from tests.integration.conftest import REPO, WorkerEnv, produce, scoring_event
from tests.slack_server import FakeSlack

pytestmark = pytest.mark.integration

SECRET = b"alerting-integration-secret-0123456789"
NOTIFIER_STORE = "notifier-clickhouse"
FEATURES = [f"f{i}" for i in range(6)]


def _event(n: int, features: dict[str, float], t0: datetime) -> dict[str, Any]:
    return scoring_event(f"burst-{n:05d}", n, t0 + timedelta(milliseconds=20 * n), features)


def _burst(count: int) -> list[tuple[str, bytes | None, bytes]]:
    """Every feature shifts by 5 sigma for a while, back, then again: a burst of drift."""
    rng = random.Random(5)
    t0 = datetime.now(UTC) - timedelta(seconds=30)
    messages: list[tuple[str, bytes | None, bytes]] = []
    for n in range(count):
        shifted = (count // 3 <= n < count // 2) or n >= 5 * count // 6
        features = {f: round(rng.gauss(5.0 if shifted else 0.0, 1.0), 5) for f in FEATURES}
        signed = sign_document(_event(n, features, t0), "scoring-1", SECRET)
        messages.append(("ai.inference", b"risk-v1", orjson.dumps(signed)))
    return messages


def _configure(env: WorkerEnv, fake: FakeSlack) -> None:
    keys = {"keys": [{"key_id": "scoring-1", "secret": "hex:" + SECRET.hex(), "sources": ["scoring-api"]}]}
    (env.data_dir / "keys.yaml").write_text(yaml.safe_dump(keys))
    routing = {
        "global": {"resolve_timeout": "10m", "min_severity": "low"},
        "receivers": [
            {"name": "nobody"},
            {"name": "ml", "slack": {"channel": "#ml-alerts", "min_interval": "200ms"}},
        ],
        "route": {
            "receiver": "nobody",
            "group_by": ["stage", "model"],
            "group_wait": "2s",
            "group_interval": "3s",
            "routes": [{"matchers": ["stage=detector"], "receiver": "ml"}],
        },
    }
    (env.data_dir / "alerting.yaml").write_text(yaml.safe_dump(routing))
    env.extra.update(
        VIGIL_KEYS_FILE=str(env.data_dir / "keys.yaml"),
        VIGIL_ALERTING_CONFIG=str(env.data_dir / "alerting.yaml"),
        VIGIL_ALERTING_REFRESH_SECONDS="1",
        VIGIL_SLACK_BOT_TOKEN="xoxb-integration",
        VIGIL_SLACK_BASE_URL=fake.base_url,
    )


def _settled(env: WorkerEnv, query: str, quiet: float = 3.0, timeout: float = 90.0) -> int:
    """The query's value once it has stopped changing for ``quiet`` seconds."""
    deadline = time.monotonic() + timeout
    value, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        current = env.scalar(query)
        if current != value:
            value, since = current, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return value
        time.sleep(0.5)
    raise AssertionError(f"{query!r} kept changing; logs: {env.logs()}")


def _notifier_env(env: WorkerEnv) -> dict[str, str]:
    return {"VIGIL_CLICKHOUSE_URL": f"chdb://{env.data_dir / NOTIFIER_STORE}"}


def _vigil(env: WorkerEnv, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI as an operator of the notifier runs it (its store, its alerting directory)."""
    environment = {**env.env, **_notifier_env(env), "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        capture_output=True,
        text=True,
        env=environment,
        cwd=env.data_dir,
        timeout=120,
    )


def test_a_drift_burst_is_one_thread_and_every_occurrence_is_stored(
    worker_env: WorkerEnv, fake_slack: FakeSlack
) -> None:
    _configure(worker_env, fake_slack)
    messages = [(worker_env.topic(t), k, v) for t, k, v in _burst(1800)]
    asyncio.run(produce(worker_env.brokers, messages))
    worker_env.start_worker()
    worker_env.start("notifier", **_notifier_env(worker_env))

    worker_env.wait_until("SELECT count() FROM events_unique", 1800)
    detector = "FROM findings_unique WHERE stage = 'detector' AND model_id = 'risk-v1'"
    findings = _settled(worker_env, f"SELECT count() {detector}")
    assert findings >= 5, "the burst produced too few findings to be a burst"
    counted = worker_env.wait_until(
        "SELECT sum(occurrences) FROM alert_states_unique "
        "WHERE labels['stage'] = 'detector' AND labels['model'] = 'risk-v1'",
        findings,
        store=NOTIFIER_STORE,
    )
    assert counted == findings  # every occurrence counted into its alert, none lost to dedup

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not fake_slack.posts():
        time.sleep(0.2)
    time.sleep(4)  # let group_interval pass a couple of times: updates, not new messages
    posts = [c for c in fake_slack.posts() if "risk-v1" in c.rendered]
    assert len(posts) == 1, [p.body["text"] for p in posts]
    parent = next(m for m in fake_slack.messages.values() if m.thread_ts is None and "risk-v1" in m.text)
    for call in fake_slack.ok("chat.update"):
        assert call.body["ts"] == parent.ts
    for call in fake_slack.replies():
        assert call.body["thread_ts"] == parent.ts
    shown = parent.blocks if parent.edits else fake_slack.posts()[0].blocks
    assert "risk-v1" in orjson.dumps(shown).decode()

    # the alert is visible and can be acknowledged and silenced while the worker runs
    listed = _vigil(worker_env, "alerts", "list")
    assert listed.returncode == 0, listed.stderr
    group_id = worker_env.sql(
        "SELECT group_ids[1] FROM alert_states_unique WHERE labels['model'] = 'risk-v1' LIMIT 1",
        NOTIFIER_STORE,
    )[0][0]
    assert group_id in listed.stdout
    acked = _vigil(worker_env, "alerts", "ack", group_id, "--by", "dana")
    assert acked.returncode == 0, acked.stderr
    worker_env.wait_until(
        "SELECT count() FROM alert_states_unique WHERE labels['model'] = 'risk-v1' AND acked_by = 'dana'",
        1,
        store=NOTIFIER_STORE,
    )
    silenced = _vigil(
        worker_env, "silence", "add", "--match", "model=risk-v1", "--for", "1h", "--reason", "retrain"
    )
    assert silenced.returncode == 0, silenced.stderr
    silence_id = silenced.stdout.split()[1]
    worker_env.wait_until(
        f"SELECT count() FROM silences_unique WHERE silence_id = '{silence_id}'", 1, store=NOTIFIER_STORE
    )
    expired = _vigil(worker_env, "silence", "expire", silence_id)
    assert expired.returncode == 0, expired.stderr
    assert (
        worker_env.scalar(
            f"SELECT count() FROM silences_unique WHERE silence_id = '{silence_id}' AND ends_at <= now64(3)",
            NOTIFIER_STORE,
        )
        == 1
    )
    assert not os.listdir(worker_env.data_dir / "alerting" / "requests")


def test_the_kafka_receiver_publishes_routed_notifications(kafka_brokers: str, tmp_path: Path) -> None:
    from alerting import AlertGate, AlertManager, ConfigSource, ManagerOptions, ReceiverContext
    from alerting.config import parse_config
    from sinks.receivers import build_receiver
    from tests.factories import finding
    from tests.integration.conftest import consume_all

    prefix = f"it{os.getpid()}{int(time.time())}."
    config = parse_config(
        {
            "receivers": [{"name": "stream", "kafka": {"topic": "ai.alerts.routed"}}],
            "route": {"receiver": "stream", "group_wait": "0s"},
        }
    )
    context = ReceiverContext(kafka_brokers=kafka_brokers, topic_prefix=prefix)
    manager = AlertManager(
        ConfigSource(None, config),
        context,
        None,
        ManagerOptions(state_dir=tmp_path),
        receiver_factory=build_receiver,
    )
    for row in AlertGate().admit([finding(rule="export-needs-mfa", principal_id="bob")]):
        manager.notify(row)
    manager.close(timeout=30)
    [record] = asyncio.run(consume_all(kafka_brokers, f"{prefix}ai.alerts.routed", 1, timeout=30))
    document = orjson.loads(record.value)
    assert (document["status"], document["receiver"]) == ("firing", "stream")
    assert document["alerts"][0]["labels"]["principal"] == "bob"
    assert record.key == document["groupKey"].encode()
