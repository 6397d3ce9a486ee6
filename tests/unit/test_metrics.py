"""vigil.metrics: what a scrape shows adds up to what the store received; health and readiness."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from streams import local
from tests.clock import FakeClock
from vigil.demo import DemoTraffic, write_demo_inventory, write_demo_keys
from vigil.metrics import Health, MeasuredStore, Metrics, MetricsPortError, MetricsServer, serve
from vigil.runtime import build_pipeline
from vigil.settings import MetricsSettings, Settings


class RecordingStore:
    """Keeps every table written; fails the first ``failures`` writes."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.rows: dict[str, list[Any]] = {}

    def write(self, tables: dict[str, Any], alerts_stored: Callable[[], None] | None = None) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("store unavailable")
        for name, rows in tables.items():
            self.rows.setdefault(name, []).extend(rows)
        if alerts_stored is not None:
            alerts_stored()


class NoAlerts:
    def notify(self, alert: Any) -> None:
        pass


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape, by name and labels: what Prometheus would store."""
    from prometheus_client.exposition import generate_latest

    text = generate_latest(metrics.registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def by_label(scraped: dict[Any, float], name: str, label: str) -> Counter[str]:
    totals: Counter[str] = Counter()
    for (sample, labels), value in scraped.items():
        if sample == name:
            totals[dict(labels)[label]] += int(value)
    return totals


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Metrics, RecordingStore]:
    data = tmp_path_factory.mktemp("demo")
    traffic = DemoTraffic(write_demo_keys(data / "keys.yaml"), events=1500, seed=11)
    write_demo_inventory(data / "inventory.yaml")
    settings = Settings(data_dir=data)
    metrics, store = Metrics(), RecordingStore(failures=2)
    lines = [*traffic.lines(), b"{not json", b'{"type": "inference"}']
    local.run(
        local.messages_from_lines(lines, "demo"),
        build_pipeline(settings),
        store,  # type: ignore[arg-type]
        NoAlerts(),  # type: ignore[arg-type]
        batch_size=400,
        metrics=metrics,
    )
    return metrics, store


def test_scraped_counters_add_up_to_the_stored_rows(demo_run: tuple[Metrics, RecordingStore]) -> None:
    metrics, store = demo_run
    scraped = samples(metrics)
    rows = store.rows
    assert by_label(scraped, "vigil_messages_total", "topic") == {
        "demo": len(rows["events"]) + len(rows["rejected"])
    }
    assert by_label(scraped, "vigil_rejected_total", "code") == Counter(r.code for r in rows["rejected"])
    assert len(rows["rejected"]) >= 2
    assert by_label(scraped, "vigil_verify_total", "reason") == Counter(
        r.verify_reason for r in rows["events"]
    )
    assert by_label(scraped, "vigil_decisions_total", "decision") == Counter(
        r.decision for r in rows["decisions"]
    )
    assert by_label(scraped, "vigil_policy_decisions_total", "policy_id") == Counter(
        p for r in rows["decisions"] for p in (r.policy_ids or ["none"])
    )
    assert by_label(scraped, "vigil_findings_total", "rule") == Counter(
        r.detector_or_rule for r in rows["findings"]
    )
    assert by_label(scraped, "vigil_alerts_total", "severity") == Counter(r.severity for r in rows["alerts"])
    assert rows["findings"]
    assert rows["alerts"]


def test_batches_are_timed_and_store_failures_counted(demo_run: tuple[Metrics, RecordingStore]) -> None:
    scraped = samples(demo_run[0])
    batches = 4  # 1,502 lines in batches of 400
    assert scraped[("vigil_batch_duration_seconds_count", (("step", "process"),))] == batches
    assert scraped[("vigil_batch_duration_seconds_count", (("step", "store"),))] == batches
    assert scraped[("vigil_store_write_failures_total", ())] == 2


def test_a_failed_store_write_makes_the_process_unready_until_one_succeeds() -> None:
    metrics, health = Metrics(), Health(60)
    store = MeasuredStore(RecordingStore(failures=1), metrics, health)
    with pytest.raises(ConnectionError):
        store.write({"events": []})
    assert health.ready() == (False, "the last store write failed (retrying)")
    store.write({"events": []})
    assert health.ready() == (True, "ok")


def test_alive_while_the_loop_beats_or_waits_for_input() -> None:
    clock = FakeClock()
    health = Health(30, clock=clock)
    clock.advance(29)
    assert health.alive()[0]
    clock.advance(2)
    assert health.alive() == (False, "no progress for 31s (limit 30s)")
    health.beat()
    assert health.alive()[0]
    health.idle()
    clock.advance(3600)
    assert health.alive() == (True, "ok (waiting for input)")


def test_a_consumer_is_ready_only_with_partitions() -> None:
    health = Health(30, needs_assignment=True)
    assert health.ready() == (False, "no partitions assigned")
    health.assigned = True
    assert health.ready() == (True, "ok")


def kafka_statistics(partitions: dict[int, dict[str, int]]) -> str:
    """librdkafka's statistics JSON, reduced to what is read from it."""
    return orjson.dumps(
        {"topics": {"ai.inference": {"partitions": {str(p): v for p, v in partitions.items()}}}}
    ).decode()


def test_lag_and_fetch_queue_come_from_the_assigned_partitions_only() -> None:
    metrics = Metrics()
    metrics.assigned([("ai.inference", 0), ("ai.inference", 1)])
    metrics.kafka_statistics(
        kafka_statistics(
            {
                0: {"consumer_lag": 12, "fetchq_cnt": 5},
                1: {"consumer_lag": -1, "fetchq_cnt": 0},  # nothing committed yet: unknown
                2: {"consumer_lag": 40, "fetchq_cnt": 9},  # another consumer's
                -1: {"consumer_lag": -1, "fetchq_cnt": 0},  # librdkafka's internal partition
            }
        )
    )
    metrics.committed({("ai.inference", 0): 88})
    scraped = samples(metrics)
    lag = {
        dict(labels)["partition"]: v for (name, labels), v in scraped.items() if name == "vigil_consumer_lag"
    }
    assert lag == {"0": 12}
    assert scraped[("vigil_queue_depth", (("queue", "fetched"),))] == 5
    assert scraped[("vigil_committed_offset", (("partition", "0"), ("topic", "ai.inference")))] == 88
    assert scraped[("vigil_assigned_partitions", ())] == 2

    metrics.revoked([("ai.inference", 0)])
    scraped = samples(metrics)
    assert not [name for name, _ in scraped if name in ("vigil_consumer_lag", "vigil_committed_offset")]
    assert scraped[("vigil_assigned_partitions", ())] == 1


@pytest.fixture
def server() -> Iterator[tuple[MetricsServer, Health]]:
    metrics, health = Metrics(), Health(30, needs_assignment=True)
    metrics.notification("slack", "sent")
    running = serve(MetricsSettings(port=0), metrics, health)
    assert running is not None
    yield running, health
    running.close()


def get(server: MetricsServer, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_the_server_answers_metrics_health_and_readiness(server: tuple[MetricsServer, Health]) -> None:
    running, health = server
    status, text = get(running, "/metrics")
    assert status == 200
    assert 'vigil_notifications_total{receiver="slack",result="sent"} 1.0' in text
    assert get(running, "/healthz") == (200, "ok\n")
    assert get(running, "/readyz") == (503, "no partitions assigned\n")
    health.assigned = True
    assert get(running, "/readyz") == (200, "ok\n")
    assert get(running, "/other")[0] == 404


def test_no_port_no_server() -> None:
    assert serve(MetricsSettings(), Metrics(), Health(30)) is None


def test_a_taken_port_is_a_clear_error(server: tuple[MetricsServer, Health]) -> None:
    taken = server[0].port
    with pytest.raises(MetricsPortError, match=f"cannot serve metrics on 127.0.0.1:{taken}"):
        serve(MetricsSettings(port=taken), Metrics(), Health(30))


def test_unreadable_client_statistics_never_reach_the_loop(caplog: pytest.LogCaptureFixture) -> None:
    metrics = Metrics()
    metrics.assigned([("ai.inference", 0)])
    metrics.kafka_statistics("{not json")
    metrics.kafka_statistics(kafka_statistics({0: {"consumer_lag": 3, "fetchq_cnt": 1}}))
    assert "unreadable Kafka client statistics" in caplog.text
    assert samples(metrics)[("vigil_consumer_lag", (("partition", "0"), ("topic", "ai.inference")))] == 3
