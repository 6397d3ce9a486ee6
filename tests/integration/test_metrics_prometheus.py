"""A real Prometheus scrapes a worker while traffic flows; what it stored adds up to the tables.

Prometheus is Debian's package (scripts/prometheus/prometheus.sh installs and starts it),
scraping every second. Traffic goes in three bursts through the real broker: signed
events, forged ones and lines that are not events, so every counter family moves.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
import yaml
from confluent_kafka import Producer

from identity.signing import sign_document
from tests.integration.conftest import REPO, WorkerEnv, scoring_event

pytestmark = pytest.mark.integration

SECRET = b"metrics-integration-secret-0123456789"
SCRIPT = REPO / "scripts/prometheus/prometheus.sh"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Prometheus:
    def __init__(self, directory: Path, target_port: int) -> None:
        self.directory = directory
        self.port = free_port()
        self.config = directory / "prometheus.yml"
        self.config.write_text(
            yaml.safe_dump(
                {
                    "global": {"scrape_interval": "1s", "scrape_timeout": "900ms"},
                    "scrape_configs": [
                        {
                            "job_name": "vigil-worker",
                            "static_configs": [{"targets": [f"127.0.0.1:{target_port}"]}],
                        }
                    ],
                }
            )
        )

    def _script(self, *args: str) -> None:
        env = {"VIGIL_PROMETHEUS_PORT": str(self.port), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
        subprocess.run([str(SCRIPT), *args], check=True, timeout=600, env=env)

    def start(self) -> Prometheus:
        self._script("start", str(self.config), str(self.directory))
        return self

    def stop(self) -> None:
        self._script("stop", str(self.directory))

    def query(self, promql: str) -> dict[str, float]:
        """Instant query; each series by its label values joined with '/' ('' for no labels)."""
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.load(response)
        assert body["status"] == "success", body
        series = body["data"]["result"]
        return {
            "/".join(v for k, v in sorted(s["metric"].items()) if k != "__name__"): float(s["value"][1])
            for s in series
        }


@pytest.fixture
def prometheus(tmp_path: Path, worker_env: WorkerEnv) -> Iterator[tuple[Prometheus, int]]:
    metrics_port = free_port()
    directory = tmp_path / "prometheus"
    directory.mkdir()
    server = Prometheus(directory, metrics_port).start()
    yield server, metrics_port
    server.stop()


def _send(env: WorkerEnv, messages: list[tuple[bytes, bytes]]) -> None:
    producer = Producer({"bootstrap.servers": env.brokers, "linger.ms": 20})
    for key, value in messages:
        producer.produce(env.topic("ai.inference"), value, key)
    assert producer.flush(30) == 0


def _burst(n: int, first: int, t0: datetime) -> list[tuple[bytes, bytes]]:
    messages = []
    for i in range(first, first + n):
        model = f"model-{i % 5}"
        event = scoring_event(f"evt-{i:05d}", i, t0 + timedelta(milliseconds=i), {"x": (i % 7) / 10}, model)
        if i % 10 == 3:
            value = orjson.dumps(sign_document(event, "scoring-1", b"not-the-key-" + SECRET))  # forged
        elif i % 10 == 7:
            value = b'{"event_id": "' + str(i).encode() + b'", "type": "inference"}'  # not an event
        else:
            value = orjson.dumps(sign_document(event, "scoring-1", SECRET))
        messages.append((model.encode(), value))
    return messages


def _eventually(check: Callable[[], object], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            check()
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def _http_status(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


def test_scraped_metrics_add_up_to_what_the_tables_hold(
    worker_env: WorkerEnv, prometheus: tuple[Prometheus, int]
) -> None:
    server, metrics_port = prometheus
    keys = {"keys": [{"key_id": "scoring-1", "secret": "hex:" + SECRET.hex(), "sources": ["scoring-api"]}]}
    (worker_env.data_dir / "keys.yaml").write_text(yaml.safe_dump(keys))
    worker_env.extra.update(
        VIGIL_KEYS_FILE=str(worker_env.data_dir / "keys.yaml"),
        VIGIL_METRICS_PORT=str(metrics_port),
        VIGIL_METRICS_KAFKA_STATS_SECONDS="1",
        VIGIL_DETECTORS_SNAPSHOT_SECONDS="0",
    )
    worker_env.start_worker()
    worker_env.wait_until("SELECT count() FROM events", 0)
    _eventually(lambda: _assert_equal(_http_status(metrics_port, "/readyz"), 200))
    assert _http_status(metrics_port, "/healthz") == 200

    t0 = datetime.now(UTC) - timedelta(seconds=20)
    total, per_burst = 0, 300
    for burst in range(3):  # traffic keeps flowing while Prometheus scrapes
        _send(worker_env, _burst(per_burst, total, t0))
        total += per_burst
        time.sleep(1.5 if burst < 2 else 0)
    invalid = total // 10
    worker_env.wait_until("SELECT count() FROM rejected_unique", invalid)
    worker_env.wait_until("SELECT count() FROM events_unique", total - invalid)
    _eventually(lambda: _assert_equal(worker_env.committed(), total))

    def table(query: str) -> dict[str, float]:
        return {row[0]: float(row[1]) for row in worker_env.sql(query)}

    def scraped_equals_tables() -> None:
        assert server.query("sum(up)") == {"": 1.0}
        assert server.query("sum(vigil_messages_total)") == {"": float(total)}
        assert server.query("sum by (code) (vigil_rejected_total)") == table(
            "SELECT code, count() FROM rejected_unique GROUP BY code"
        )
        assert server.query("sum by (reason) (vigil_verify_total)") == table(
            "SELECT verify_reason, count() FROM events_unique GROUP BY verify_reason"
        )
        assert server.query("sum by (decision) (vigil_decisions_total)") == table(
            "SELECT decision, count() FROM decisions_unique GROUP BY decision"
        )
        assert server.query("sum by (rule) (vigil_findings_total)") == table(
            "SELECT detector_or_rule, count() FROM findings_unique GROUP BY detector_or_rule"
        )
        assert server.query("sum(vigil_committed_offset)") == {"": float(total)}
        assert server.query("sum(vigil_consumer_lag)") == {"": 0.0}
        assert server.query("sum(vigil_assigned_partitions)") == {"": 12.0}
        batches = server.query('sum(vigil_batch_duration_seconds_count{step="store"})')[""]
        assert batches >= total / 50  # batches of at most 50 messages

    _eventually(scraped_equals_tables)
    reasons = table("SELECT verify_reason, count() FROM events_unique GROUP BY verify_reason")
    assert reasons["bad_signature"] > 0


def _assert_equal(actual: object, expected: object) -> None:
    assert actual == expected
