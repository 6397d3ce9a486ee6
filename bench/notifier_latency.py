"""``vigil notifier``: from a record on ``ai.alerts`` to the Slack API call, beside the Kafka floor.

Why this exists: the notifier promises that a critical alert reaches Slack within
1 s of its row landing on ``ai.alerts``, and any other within ``group_wait`` + 1 s
(docs/alerting.md). This measures both, in one run with their baseline:

- **notifier**: ``vigil notifier`` as a subprocess (warm: it has joined its group and
  posted a warm-up alert before the first run), state on disk, routing by model with
  ``--group-wait``; a local server that speaks Slack's Web API records when each
  group's ``chat.postMessage`` arrives. Latency = that moment - the moment the row
  was sent to Kafka. Receiver pacing is off (``min_interval: 0``): Slack's own limit of
  about one message a second per channel is Slack's, not the notifier's.
- **baseline**: a plain aiokafka consumer in this process reading the same records
  (sent -> fetched): what any consumer of the topic waits at least.

Each run publishes ``--alerts`` rows at ``--rate`` per second, half ``critical`` and half
``medium``, every one a new group (a new model: ``--alerts`` models per run, principals
drawn from 5,000), so each costs one Slack message. Runs use fresh models; p50 and p99
are reported as min / median / max over ``--runs`` runs. The broker is
``VIGIL_KAFKA_BROKERS`` (default the test broker on ``VIGIL_KAFKA_PORT``).

Usage::

    .venv/bin/python bench/notifier_latency.py                      # 3 runs of 300 alerts
    .venv/bin/python bench/notifier_latency.py --alerts 60 --runs 1  # smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import orjson
import yaml

# Run as a script, bench/ is sys.path[0]: import the product, not a bench module of the same name.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from alerting.model import alert_id_for, fingerprint, labels_for, title_for
from schemas.records import AlertRow
from tests.slack_server import FakeSlack

REPO = Path(__file__).resolve().parents[1]
BROKERS = os.environ.get("VIGIL_KAFKA_BROKERS", f"127.0.0.1:{os.environ.get('VIGIL_KAFKA_PORT', '19092')}")
PRINCIPALS = [f"svc-{i:04d}" for i in range(5_000)]
TITLE_MODEL = re.compile(r"bench-rule on (\S+?)[:\"\s]")


def alert_row(model: str, severity: str, rng: random.Random) -> AlertRow:
    labels = labels_for("policy", "bench-rule", model, rng.choice(PRINCIPALS), severity)
    key = fingerprint(labels)
    now = datetime.now(UTC)
    return AlertRow(
        alert_id=alert_id_for(key, model),
        ts=now,
        fired_at=now,
        fingerprint=key,
        severity=severity,
        title=title_for(labels),
        summary=f"denied on {model}",
        stage="policy",
        detector_or_rule="bench-rule",
        model_id=model,
        principal_id=labels["principal"],
        event_id=f"e-{model}",
        occurrences=1,
    )


def start_notifier(
    data_dir: Path, prefix: str, slack: FakeSlack, group_wait: float
) -> subprocess.Popen[bytes]:
    routing = {
        "receivers": [{"name": "sre", "slack": {"channel": "#sre", "min_interval": "0s"}}],
        "route": {
            "receiver": "sre",
            "group_by": ["stage", "model"],
            "group_wait": f"{group_wait}s",
            "group_interval": "5m",
        },
    }
    (data_dir / "alerting.yaml").write_text(yaml.safe_dump(routing))
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    env.update(
        VIGIL_DATA_DIR=str(data_dir),
        VIGIL_KAFKA_BROKERS=BROKERS,
        VIGIL_KAFKA_TOPIC_PREFIX=prefix,
        VIGIL_ALERTING_CONFIG=str(data_dir / "alerting.yaml"),
        VIGIL_SLACK_BOT_TOKEN="xoxb-bench",
        VIGIL_SLACK_BASE_URL=slack.base_url,
        VIGIL_LOG_LEVEL="WARNING",
        PYTHONPATH=str(REPO),
    )
    log = (data_dir / "notifier.log").open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "cli", "notifier"],
        env=env,
        cwd=data_dir,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def posted_at(slack: FakeSlack) -> dict[str, float]:
    """When each model's group message reached the Slack API (first post only)."""
    found: dict[str, float] = {}
    for call in slack.posts():
        match = TITLE_MODEL.search(call.rendered)
        if match is not None:
            found.setdefault(match.group(1), call.at)
    return found


async def one_run(topic: str, run: int, args: argparse.Namespace, slack: FakeSlack) -> dict[str, list[float]]:
    rng = random.Random(run)
    rows = [
        alert_row(f"bench-r{run}-m{i:04d}", "critical" if i % 2 else "medium", rng)
        for i in range(args.alerts)
    ]
    sent: dict[str, float] = {}
    fetched: dict[str, float] = {}
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=BROKERS,
        group_id=f"bench-floor-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="latest",
    )
    await consumer.start()
    while not consumer.assignment():
        await consumer.getmany(timeout_ms=200)
    await consumer.seek_to_end()

    async def read() -> None:
        while len(fetched) < len(rows):
            for records in (await consumer.getmany(timeout_ms=200)).values():
                now = time.monotonic()
                for record in records:
                    fetched.setdefault(orjson.loads(record.value)["model_id"], now)

    reader = asyncio.create_task(read())
    producer = AIOKafkaProducer(bootstrap_servers=BROKERS, acks="all", linger_ms=0)
    await producer.start()
    try:
        for row in rows:
            sent[row.model_id] = time.monotonic()
            await producer.send_and_wait(topic, orjson.dumps(row._asdict()), key=row.fingerprint.encode())
            await asyncio.sleep(1 / args.rate)
        await asyncio.wait_for(reader, timeout=60)
    finally:
        await producer.stop()
        await consumer.stop()
    deadline = time.monotonic() + args.group_wait + 30
    while time.monotonic() < deadline and len(posted_at(slack).keys() & sent.keys()) < len(rows):
        await asyncio.sleep(0.2)
    posted = posted_at(slack)
    missing = [m for m in sent if m not in posted]
    if missing:
        raise SystemExit(f"run {run}: {len(missing)} alert(s) never reached Slack, e.g. {missing[:3]}")
    severity = {row.model_id: row.severity for row in rows}
    return {
        "notifier critical": [posted[m] - sent[m] for m in sent if severity[m] == "critical"],
        "notifier medium": [posted[m] - sent[m] for m in sent if severity[m] == "medium"],
        "kafka floor": [fetched[m] - sent[m] for m in sent],
    }


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--alerts", type=int, default=300)
    parser.add_argument("--rate", type=float, default=20.0, help="alert rows sent per second")
    parser.add_argument("--group-wait", type=float, default=2.0)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    slack = FakeSlack().start()
    prefix = f"bench{uuid.uuid4().hex[:8]}."
    topic = f"{prefix}ai.alerts"
    with tempfile.TemporaryDirectory() as data_dir:
        notifier = start_notifier(Path(data_dir), prefix, slack, args.group_wait)
        try:
            started = time.monotonic()
            asyncio.run(warm_up(topic, slack))
            print(f"notifier up and warm in {time.monotonic() - started:.1f}s")
            results = [asyncio.run(one_run(topic, run, args, slack)) for run in range(args.runs)]
        finally:
            notifier.terminate()
            notifier.wait(timeout=30)
            slack.stop()
    shape = f"{args.alerts} alerts per run at {args.rate:.0f}/s, group_wait {args.group_wait:g}s"
    print(f"{shape}, {args.runs} run(s)")
    print(f"{'seconds from ai.alerts to Slack':<28}{'p50 min/med/max':>24}{'p99 min/med/max':>24}")
    for name in results[0]:
        p50 = [percentile(r[name], 0.50) for r in results]
        p99 = [percentile(r[name], 0.99) for r in results]
        print(f"{name:<28}{spread(p50):>24}{spread(p99):>24}")


def spread(values: list[float]) -> str:
    return f"{min(values):.3f}/{statistics.median(values):.3f}/{max(values):.3f}"


async def warm_up(topic: str, slack: FakeSlack) -> None:
    """One critical alert through the whole path: the notifier has joined and can post."""
    row = alert_row("bench-warm-up", "critical", random.Random(0))
    producer = AIOKafkaProducer(bootstrap_servers=BROKERS, acks="all")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            await producer.start()
            break
        except Exception:
            await asyncio.sleep(1)
    try:
        while time.monotonic() < deadline and "bench-warm-up" not in posted_at(slack):
            await producer.send_and_wait(topic, orjson.dumps(row._asdict()), key=row.fingerprint.encode())
            await asyncio.sleep(3)
    finally:
        await producer.stop()
    if "bench-warm-up" not in posted_at(slack):
        raise SystemExit("the notifier did not post the warm-up alert within 120 s (see its log)")


if __name__ == "__main__":
    main()
