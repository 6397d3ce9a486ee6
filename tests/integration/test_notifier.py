"""``vigil notifier`` through the real broker: kill -9, restarts and a standby send nothing twice.

Alert rows go to ``ai.alerts`` as workers publish them. A notifier groups them by
model and posts one Slack message per group; alerts that join a group later are
replies in its thread. The notifier is killed with SIGKILL in the middle of a
burst, while groups wait out their ``group_wait`` and rows sit unapplied in Kafka.
Whoever carries on (the same notifier restarted, or the standby taking over) must
deliver every notification exactly once and keep replying in the threads the dead
one started.
"""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
import yaml
from confluent_kafka.admin import AdminClient, NewTopic

from alerting.model import alert_id_for, fingerprint, labels_for, title_for
from schemas.records import AlertRow
from tests.integration.conftest import WorkerEnv, produce
from tests.slack_server import Call, FakeSlack

pytestmark = pytest.mark.integration

GROUP = re.compile(r"Group `([0-9a-f]+)`")


def alert_row(model: str, rule: str = "adwin-mean-shift", occurrences: int = 1) -> AlertRow:
    labels = labels_for("detector", rule, model, "", "medium")
    print_ = fingerprint(labels)
    now = datetime.now(UTC)
    return AlertRow(
        alert_id=alert_id_for(print_, f"first-{model}-{rule}"),
        ts=now,
        fired_at=now,
        fingerprint=print_,
        severity="medium",
        title=title_for(labels),
        summary=f"{rule} on {model}",
        stage="detector",
        detector_or_rule=rule,
        model_id=model,
        principal_id="",
        event_id=f"e-{model}-{rule}-{occurrences}",
        occurrences=occurrences,
    )


def publish(env: WorkerEnv, rows: list[AlertRow]) -> None:
    messages = [
        (env.topic("ai.alerts"), row.fingerprint.encode(), orjson.dumps(row._asdict())) for row in rows
    ]
    asyncio.run(produce(env.brokers, messages))


def configure(env: WorkerEnv, fake: FakeSlack) -> None:
    admin = AdminClient({"bootstrap.servers": env.brokers})
    for future in admin.create_topics([NewTopic(env.topic("ai.alerts"), 4, 1)]).values():
        future.result(timeout=30)
    routing = {
        "global": {"resolve_timeout": "10m"},
        "receivers": [{"name": "sre", "slack": {"channel": "#sre", "min_interval": "20ms"}}],
        "route": {
            "receiver": "sre",
            "group_by": ["stage", "model"],
            "group_wait": "4s",
            "group_interval": "2s",
            "repeat_interval": "4h",
        },
    }
    (env.data_dir / "alerting.yaml").write_text(yaml.safe_dump(routing))
    env.extra.update(
        VIGIL_ALERTING_CONFIG=str(env.data_dir / "alerting.yaml"),
        VIGIL_ALERTING_REFRESH_SECONDS="1",
        VIGIL_SLACK_BOT_TOKEN="xoxb-notifier-test",
        VIGIL_SLACK_BASE_URL=fake.base_url,
        VIGIL_NOTIFIER_SESSION_TIMEOUT="6",
    )


def log_of(env: WorkerEnv, index: int) -> str:
    return (env.data_dir / f"worker-{index}.log").read_text(errors="replace")


def wait_for(what: str, done: Callable[[], bool], env: WorkerEnv, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if done():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}; logs:\n{env.logs()}")


def group_of(call: Call) -> str:
    found = GROUP.search(call.rendered)
    assert found is not None, call.rendered
    return found.group(1)


def burst_then_kill(env: WorkerEnv, fake: FakeSlack, active: subprocess.Popen[bytes]) -> dict[str, str]:
    """Ten groups posted; then joins, new groups and recurrences, with a kill -9 in the middle.

    Returns each first-burst model's group id, by the ts of its thread.
    """
    publish(env, [alert_row(f"m{i}") for i in range(10)])
    wait_for("the first ten groups", lambda: len(fake.posts()) == 10, env)
    parents = threads(fake)
    assert len(set(parents.values())) == 10
    publish(
        env,
        [
            *(alert_row(f"m{i}", "page-hinkley") for i in range(5)),  # join open groups: thread replies
            *(alert_row(f"m{i}", occurrences=2) for i in range(5, 10)),  # recur: edits, no new message
            *(alert_row(f"m{i}") for i in range(10, 15)),  # new groups, inside their group wait
        ],
    )
    time.sleep(1.0)
    active.send_signal(signal.SIGKILL)
    active.wait(timeout=10)
    publish(env, [alert_row(f"m{i}") for i in range(15, 20)])  # while no notifier runs
    return parents


def threads(fake: FakeSlack) -> dict[str, str]:
    """The ts of every thread's first message, with the group it belongs to."""
    with fake.lock:
        messages = [m for m in fake.messages.values() if m.thread_ts is None]
    found = {m.ts: GROUP.search(orjson.dumps(m.blocks).decode()) for m in messages}
    return {ts: match.group(1) for ts, match in found.items() if match is not None}


def assert_each_notification_once(fake: FakeSlack, env: WorkerEnv, parents: dict[str, str]) -> None:
    def joined() -> list[Call]:
        return [r for r in fake.replies() if "*New*" in r.body["text"]]

    wait_for("twenty groups and five joins", lambda: len(fake.posts()) == 20 and len(joined()) == 5, env)
    time.sleep(5.0)  # anything sent twice would arrive by now (group interval 2 s)
    posts = fake.posts()
    assert len(posts) == 20
    assert len({group_of(p) for p in posts}) == 20  # one message per group, none twice
    replies = joined()
    assert len(replies) == 5
    assert len({r.body["thread_ts"] for r in replies}) == 5  # one join per group, each once
    for reply in replies:  # the threads the first notifier started go on
        assert reply.body["thread_ts"] in parents
        assert "page-hinkley" in reply.body["text"]
    sent = Counter((c.body.get("thread_ts"), c.body["text"]) for c in fake.ok("chat.postMessage"))
    assert [key for key, count in sent.items() if count > 1] == []


def stop_within(process: subprocess.Popen[bytes], seconds: float) -> None:
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    assert time.monotonic() - started <= seconds


def test_kill_9_mid_burst_then_restart_delivers_each_notification_once(
    worker_env: WorkerEnv, fake_slack: FakeSlack
) -> None:
    configure(worker_env, fake_slack)
    first = worker_env.start("notifier")
    parents = burst_then_kill(worker_env, fake_slack, first)
    assert len(parents) == 10
    again = worker_env.start("notifier")
    assert_each_notification_once(fake_slack, worker_env, parents)
    assert "restored" in log_of(worker_env, 1)
    stop_within(again, 10.0)


def test_a_standby_takes_over_when_the_active_notifier_dies(
    worker_env: WorkerEnv, fake_slack: FakeSlack, tmp_path: Path
) -> None:
    configure(worker_env, fake_slack)
    active = worker_env.start("notifier")
    wait_for(
        "the first notifier to be active", lambda: "active notifier" in log_of(worker_env, 0), worker_env
    )
    standby = worker_env.start("notifier")
    wait_for("the second to wait as standby", lambda: "standby" in log_of(worker_env, 1), worker_env)
    parents = burst_then_kill(worker_env, fake_slack, active)
    wait_for("the standby to take over", lambda: "active notifier" in log_of(worker_env, 1), worker_env)
    assert_each_notification_once(fake_slack, worker_env, parents)
    stop_within(standby, 10.0)
