"""``vigil worker`` on the local broker next to a raw confluent-kafka consumer, in one run.

Why this exists: the worker promises governance on every event at the rate a busy
model service produces them. This benchmark answers how close it comes to what the
Kafka client alone can read, on the same topic and machine, runs alternating:

1. **throughput**: a raw consumer (``consume(1000)`` + ``orjson.loads`` per message,
   in this process), the same consumer storing each message into embedded chDB in
   batches of 2000 and committing after each (``bench/baseline_ingest.py --kafka``, a
   subprocess: the least any worker that stores every event does, so no worker can
   pass its rate), and ``vigil worker`` as a subprocess on a fresh embedded
   store and a fresh consumer group, timed from the moment its store answers queries
   (imports and migrations done, joining the group) until the group's committed
   offsets reach the end of the topic (every event stored, published and committed);
   start-up is reported apart;
2. **scaling**: two worker processes against one, on the 4 evenly keyed partitions.
   Each worker has its own embedded store here (chDB serves one process; production
   shares a ClickHouse server): events lost (in no store) and duplicates (in both,
   from the rebalance when the second joins) are counted;
3. **latency**: probes published at half the median throughput measured in 1., each
   a forged event, so the worker alerts on it; p50/p99 of send -> alert row read back
   from ``ai.alerts``, after 10 s of the same traffic without probes (warm-up).

Traffic: signed events for 200 models, 5,000 principals and 2,000 datasets
(inference keyed by model, access by principal, some training), with an inventory
that knows all of them. The broker is ``VIGIL_KAFKA_BROKERS`` (default the test
broker on ``VIGIL_KAFKA_PORT``); every run uses fresh topics.

Usage::

    .venv/bin/python bench/kafka_worker.py                    # 100k events, 3 runs each
    .venv/bin/python bench/kafka_worker.py --events 5000 --runs 1 --latency-seconds 5   # smoke run
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import yaml

# Run as a script, bench/ is sys.path[0]: import the product, not a bench module of the same name.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)

from confluent_kafka import Consumer, Producer, TopicPartition

from identity.signing import sign_document
from sinks.clickhouse import connect
from sinks.query_server import QueryError, query_remote
from streams.topics import ensure_topics
from vigil.settings import Settings

MODELS, PRINCIPALS, DATASETS = 200, 5000, 2000
SOURCES = {"inference": "scoring-api", "access": "data-portal", "training": "ml-platform"}
PARTITIONS = 4
WARM_UP_SECONDS = 10.0
"""Traffic before the first latency probe: detectors and caches of every model are built."""


# --- traffic ---------------------------------------------------------------------------


def write_world(directory: Path) -> dict[str, bytes]:
    """Keys per source and the inventory of every model, principal and dataset; returns secrets."""
    rng = random.Random(5)
    secrets = {source: rng.randbytes(32) for source in SOURCES.values()}
    keys = [
        {"key_id": f"{source}-1", "secret": "hex:" + secret.hex(), "sources": [source]}
        for source, secret in secrets.items()
    ]
    (directory / "keys.yaml").write_text(yaml.safe_dump({"keys": keys}))
    inventory = {
        "principals": [
            {"id": f"user-{p:05d}", "kind": "user", "roles": ["analyst"]} for p in range(PRINCIPALS)
        ]
        + [{"id": "svc-scoring", "kind": "service", "roles": ["inference-client"]}]
        + [{"id": "svc-trainer", "kind": "service", "roles": ["ml-engineer"]}],
        "models": [
            {"id": f"model-{m:03d}", "status": "approved", "artifact_digest": f"sha256:model-{m:03d}"}
            for m in range(MODELS)
        ],
        "datasets": [
            {
                "id": f"ds-{d:04d}",
                "classification": "internal",
                "approved": True,
                "digests": [f"sha256:ds-{d}"],
            }
            for d in range(DATASETS)
        ],
    }
    (directory / "inventory.yaml").write_text(yaml.safe_dump(inventory))
    return secrets


def event(kind: str, n: int, rng: random.Random, ts: datetime) -> tuple[str, bytes, dict[str, Any]]:
    """One event of ``kind``: (topic, key, document)."""
    common: dict[str, Any] = {
        "event_id": f"ev-{n:08d}",
        "schema_version": 1,
        "type": kind,
        "ts": ts.isoformat(),
    }
    if kind == "inference":
        model = f"model-{rng.randrange(MODELS):03d}"
        common.update(
            source="scoring-api",
            principal={"id": "svc-scoring", "kind": "service", "roles": ["inference-client"]},
            action="infer",
            resource={"kind": "model", "id": model},
            model_id=model,
            model_version="1",
            artifact_digest=f"sha256:{model}",
            request_id=f"req-{n}",
            features={"x": round(rng.gauss(0, 1), 4), "y": round(rng.expovariate(1), 4)},
            prediction={"score": round(rng.random(), 4)},
            latency_ms=round(rng.lognormvariate(2.5, 0.3), 3),
        )
        return "ai.inference", model.encode(), common
    if kind == "access":
        principal = f"user-{rng.randrange(PRINCIPALS):05d}"
        common.update(
            source="data-portal",
            principal={"id": principal, "kind": "user", "roles": []},
            action="read",
            resource={"kind": "dataset", "id": f"ds-{rng.randrange(DATASETS):04d}"},
            outcome="allowed",
            client={"ip": "10.1.2.3"},
            mfa=True,
            records=rng.randrange(1, 500),
        )
        return "ai.access", principal.encode(), common
    model = f"model-{rng.randrange(MODELS):03d}"
    dataset = rng.randrange(DATASETS)
    common.update(
        source="ml-platform",
        principal={"id": "svc-trainer", "kind": "service", "roles": []},
        action="train",
        resource={"kind": "model", "id": model},
        run_id=f"run-{n}",
        model_id=model,
        dataset_id=f"ds-{dataset:04d}",
        dataset_digest=f"sha256:ds-{dataset}",
        code_commit="4f1c2e9",
        artifact_digest=f"sha256:{model}",
        metrics={"auc": 0.91},
    )
    return "ai.training", model.encode(), common


def signed_traffic(count: int, secrets: dict[str, bytes]) -> list[tuple[str, bytes, bytes]]:
    rng = random.Random(11)
    t0 = datetime.now(UTC)
    messages = []
    for n in range(count):
        roll = rng.random()
        kind = "inference" if roll < 0.7 else "access" if roll < 0.97 else "training"
        topic, key, document = event(kind, n, rng, t0 + timedelta(microseconds=n))
        source = document["source"]
        messages.append((topic, key, orjson.dumps(sign_document(document, f"{source}-1", secrets[source]))))
    return messages


def publish(brokers: str, prefix: str, messages: list[tuple[str, bytes, bytes]]) -> None:
    producer = Producer(
        {"bootstrap.servers": brokers, "linger.ms": 20, "acks": "all", "partitioner": "murmur2_random"}
    )
    for topic, key, value in messages:
        while True:
            try:
                producer.produce(prefix + topic, value, key)
                break
            except BufferError:
                producer.poll(0.1)
    if producer.flush(120):
        raise SystemExit("the broker did not take every message")


# --- measurements ----------------------------------------------------------------------


def raw_consumer(brokers: str, topics: list[str], count: int) -> float:
    """Messages/s of consume(1000) + JSON decode, from joining the group to the last message
    (as the worker is timed from a ready store, group join included)."""
    consumer = Consumer(
        {"bootstrap.servers": brokers, "group.id": f"raw-{uuid.uuid4().hex}", "auto.offset.reset": "earliest"}
    )
    started = time.perf_counter()
    consumer.subscribe(topics)
    seen = 0
    try:
        while seen < count:
            for message in consumer.consume(1000, 1.0):
                if message.error() is None:
                    orjson.loads(message.value())
                    seen += 1
        return seen / (time.perf_counter() - started)
    finally:
        consumer.close()


def store_only_consumer(work: Path, brokers: str, topics: list[str], count: int) -> float:
    """Messages/s of ``bench/baseline_ingest.py --kafka``: consume, parse, store, commit."""
    store = work / f"store-only-{uuid.uuid4().hex[:8]}"
    script = Path(__file__).resolve().parent / "baseline_ingest.py"
    argv = [sys.executable, str(script), "--kafka", brokers, "--topics", ",".join(topics)]
    done = subprocess.run(
        [*argv, "--count", str(count), "--store", str(store)], capture_output=True, text=True, check=False
    )
    summary = re.search(r"(\d+) messages in ([\d.]+)s", done.stdout)
    if done.returncode or summary is None:
        raise SystemExit(f"the store-only consumer failed: {done.stderr[-2000:]}")
    return int(summary.group(1)) / float(summary.group(2))


def committed(brokers: str, group: str, topics: list[str]) -> int:
    consumer = Consumer({"bootstrap.servers": brokers, "group.id": group})
    try:
        wanted = [TopicPartition(t, p) for t in topics for p in range(PARTITIONS)]
        return sum(max(tp.offset, 0) for tp in consumer.committed(wanted, timeout=10))
    finally:
        consumer.close()


def worker_env(work: Path, name: str, brokers: str, prefix: str, group: str) -> tuple[dict[str, str], Path]:
    data_dir = work / name
    data_dir.mkdir()
    (data_dir / "inventory.yaml").write_text((work / "inventory.yaml").read_text())
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    env.update(
        VIGIL_DATA_DIR=str(data_dir),
        VIGIL_KEYS_FILE=str(work / "keys.yaml"),
        VIGIL_KAFKA_BROKERS=brokers,
        VIGIL_KAFKA_TOPIC_PREFIX=prefix,
        VIGIL_KAFKA_GROUP_ID=group,
        VIGIL_KAFKA_SESSION_TIMEOUT="10",
        VIGIL_LOG_LEVEL="WARNING",
    )
    return env, data_dir


def run_workers(
    work: Path, brokers: str, prefix: str, topics: list[str], count: int, processes: int
) -> dict[str, Any]:
    """``processes`` workers in one fresh group until everything is committed; then stopped."""
    group = f"bench-{uuid.uuid4().hex[:8]}"
    started = time.perf_counter()
    children, stores = [], []
    for i in range(processes):
        env, data_dir = worker_env(work, f"{group}-{i}", brokers, prefix, group)
        log = (data_dir / "worker.log").open("wb")
        children.append(
            subprocess.Popen(
                [sys.executable, "-m", "cli", "worker"], env=env, cwd=data_dir, stdout=log, stderr=log
            )
        )
        stores.append(data_dir / "clickhouse")
    done = 0
    try:
        for store in stores:
            _sql(store, "SELECT 1")
        ready = time.perf_counter()  # stores open: the workers are joining the group
        while done < count:
            time.sleep(0.05)
            if any(c.poll() is not None for c in children):
                raise SystemExit(f"a worker exited early; see {work}/{group}-*/worker.log")
            done = committed(brokers, group, topics)
        finished = time.perf_counter()
    finally:
        for child in children:
            child.terminate()
        for child in children:
            child.wait(timeout=120)
    ids_total, distinct = stored_ids(stores)
    return {
        "rate": count / (finished - ready),
        "startup": ready - started,
        "lost": count - distinct,
        "duplicates": ids_total - distinct,
    }


def stored_ids(stores: list[Path]) -> tuple[int, int]:
    """Rows stored over all stores (events and rejects), and how many distinct ones, once stopped."""
    ids: list[str] = []
    for store in stores:
        client = connect(f"chdb://{store}")
        try:
            ids += [r[0] for r in client.query("SELECT event_id FROM events").result_rows]
            ids += [r[0] for r in client.query("SELECT rejected_id FROM rejected").result_rows]
        finally:
            client.close()
    return len(ids), len(set(ids))


def _sql(store: Path, query: str) -> list[list[str]]:
    """Through the owning worker's query server; it answers once the store is open."""
    for _ in range(100):
        try:
            return [line.split("\t") for line in query_remote(store, query, "TSV").decode().splitlines()]
        except QueryError as error:
            problem = error
            time.sleep(0.2)
    raise SystemExit(f"no answer from the query server of {store}: {problem}")


def latency(
    work: Path, brokers: str, secrets: dict[str, bytes], rate: float, seconds: float
) -> dict[str, float]:
    """p50/p99 of publish -> alert row on ai.alerts for forged probes in traffic at ``rate``/s."""
    prefix = f"lat{uuid.uuid4().hex[:8]}."
    settings = Settings(kafka_brokers=brokers, kafka={"topic_prefix": prefix, "partitions": PARTITIONS})  # type: ignore[arg-type]
    ensure_topics(settings)
    env, _ = worker_env(work, f"latency-{prefix}", brokers, prefix, f"{prefix}vigil")
    log = (work / f"latency-{prefix}" / "worker.log").open("wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "cli", "worker"], env=env, cwd=work, stdout=log, stderr=log
    )
    alerts = Consumer(
        {"bootstrap.servers": brokers, "group.id": f"{prefix}reader", "auto.offset.reset": "latest"}
    )
    alerts.subscribe([prefix + "ai.alerts"])
    producer = Producer({"bootstrap.servers": brokers, "linger.ms": 1, "acks": "all"})
    rng = random.Random(3)
    received: dict[str, float] = {}
    sent: dict[str, float] = {}
    try:
        _wait_for_assignment(alerts)
        time.sleep(5)  # let the worker join its group
        start = time.perf_counter()
        n = 0
        while time.perf_counter() - start < WARM_UP_SECONDS + seconds:
            due = int((time.perf_counter() - start) * rate)
            while n < due:
                n += 1
                warm = time.perf_counter() - start > WARM_UP_SECONDS
                if warm and n % 50 == 0:  # a probe: wrongly signed, so the worker raises an alert for it
                    topic, key, document = event("inference", 10**8 + n, rng, datetime.now(UTC))
                    document["event_id"] = probe = f"probe-{n}"
                    value = orjson.dumps(sign_document(document, "scoring-api-1", b"not-the-key" * 3))
                    sent[probe] = time.perf_counter()
                else:
                    topic, key, document = event("inference", n, rng, datetime.now(UTC))
                    value = orjson.dumps(sign_document(document, "scoring-api-1", secrets["scoring-api"]))
                producer.produce(prefix + topic, value, key)
            producer.poll(0)
            _drain_alerts(alerts, received, 0.005)
        producer.flush(30)
        deadline = time.perf_counter() + 10
        while len(received) < len(sent) and time.perf_counter() < deadline:
            _drain_alerts(alerts, received, 0.2)
    finally:
        alerts.close()
        worker.terminate()
        worker.wait(timeout=120)
    delays = sorted((received[p] - sent[p]) * 1000 for p in sent if p in received)
    if not delays:
        raise SystemExit("no probe came back as an alert")
    return {
        "p50_ms": delays[len(delays) // 2],
        "p99_ms": delays[min(len(delays) - 1, int(len(delays) * 0.99))],
        "probes": len(sent),
        "returned": len(delays),
    }


def _wait_for_assignment(consumer: Consumer) -> None:
    deadline = time.monotonic() + 30
    while not consumer.assignment() and time.monotonic() < deadline:
        consumer.poll(0.2)


def _drain_alerts(consumer: Consumer, received: dict[str, float], timeout: float) -> None:
    for message in consumer.consume(500, timeout):
        if message.error() is None:
            event_id = orjson.loads(message.value()).get("event_id", "")
            if event_id.startswith("probe-") and event_id not in received:
                received[event_id] = time.perf_counter()


# --- report ----------------------------------------------------------------------------


def spread(values: list[float], unit: str = "/s") -> str:
    low, middle, high = min(values), statistics.median(values), max(values)
    return f"min {low:,.0f}{unit}  median {middle:,.0f}{unit}  max {high:,.0f}{unit}"


def alternate(runs: int, cases: dict[str, Callable[[], Any]]) -> dict[str, list[Any]]:
    results: dict[str, list[Any]] = {name: [] for name in cases}
    for attempt in range(runs):
        for name, case in cases.items():
            result = case()
            results[name].append(result)
            print(f"  run {attempt + 1} {name}: {result}", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--latency-seconds", type=float, default=30.0)
    parser.add_argument(
        "--brokers",
        default=os.environ.get(
            "VIGIL_KAFKA_BROKERS", f"127.0.0.1:{os.environ.get('VIGIL_KAFKA_PORT', '19092')}"
        ),
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="vigil-bench-kafka-") as tmp:
        work = Path(tmp)
        secrets = write_world(work)
        prefix = f"bench{uuid.uuid4().hex[:8]}."
        settings = Settings(
            kafka_brokers=args.brokers, kafka={"topic_prefix": prefix, "partitions": PARTITIONS}
        )  # type: ignore[arg-type]
        ensure_topics(settings)
        topics = [prefix + t for t in ("ai.inference", "ai.training", "ai.access")]
        print(
            f"publishing {args.events:,} signed events ({MODELS} models, {PRINCIPALS:,} principals, "
            f"{DATASETS:,} datasets) to {args.brokers} ...",
            flush=True,
        )
        publish(args.brokers, prefix, signed_traffic(args.events, secrets))

        print("throughput, alternating:")
        throughput = alternate(
            args.runs,
            {
                "raw consumer": lambda: raw_consumer(args.brokers, topics, args.events),
                "consume + store": lambda: store_only_consumer(work, args.brokers, topics, args.events),
                "vigil worker": lambda: run_workers(work, args.brokers, prefix, topics, args.events, 1),
            },
        )
        print("scaling, alternating:")
        scaling = alternate(
            args.runs,
            {
                "one worker": lambda: run_workers(work, args.brokers, prefix, topics, args.events, 1),
                "two workers": lambda: run_workers(work, args.brokers, prefix, topics, args.events, 2),
            },
        )
        worker_rates = [r["rate"] for r in throughput["vigil worker"]]
        half = statistics.median(worker_rates) / 2
        print(
            f"latency at {half:,.0f} events/s (half the median worker rate), {args.latency_seconds:.0f}s ..."
        )
        lat = latency(work, args.brokers, secrets, half, args.latency_seconds)

        raw = throughput["raw consumer"]
        stored_only = throughput["consume + store"]
        one = [r["rate"] for r in scaling["one worker"]]
        two = [r["rate"] for r in scaling["two workers"]]
        print("\nresults (events/s from a ready store to the last commit; start-up apart)")
        print(f"  raw consumer      {spread(raw)}")
        print(
            f"  consume + store   {spread(stored_only)}   / raw "
            f"{statistics.median(stored_only) / statistics.median(raw):.1%} (no checks: bounds any worker)"
        )
        print(
            f"  vigil worker      {spread(worker_rates)}   start-up median "
            f"{statistics.median(r['startup'] for r in throughput['vigil worker']):.1f}s"
        )
        print(
            f"  worker / raw      {statistics.median(worker_rates) / statistics.median(raw):.1%} "
            f"(per run: {', '.join(f'{w / r:.1%}' for w, r in zip(worker_rates, raw, strict=True))})"
        )
        print(
            f"  worker / consume + store  "
            f"{statistics.median(worker_rates) / statistics.median(stored_only):.1%}"
        )
        print(f"  one worker        {spread(one)}")
        print(f"  two workers       {spread(two)}")
        print(f"  two / one         {statistics.median(two) / statistics.median(one):.2f}x")
        print(f"  lost              {[r['lost'] for r in scaling['one worker'] + scaling['two workers']]}")
        print(f"  duplicates (two)  {[r['duplicates'] for r in scaling['two workers']]}")
        print(
            f"  publish -> alert  p50 {lat['p50_ms']:.0f} ms  p99 {lat['p99_ms']:.0f} ms "
            f"({lat['returned']}/{lat['probes']} probes)"
        )


if __name__ == "__main__":
    main()
