"""Every Grafana panel works: its SQL answers with the columns it shows, its PromQL names real metrics.

The ClickHouse panels run as Grafana would send them (macros expanded for a range that
covers the demo's traffic) through the owner's ClickHouse HTTP interface, against a
store filled by ``vigil demo``. The Prometheus panels are parsed by ``promtool`` and
may only name metrics the processes expose (:data:`PROMETHEUS_METRICS`).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.served_store import ServedStore, served_demo_store

pytestmark = pytest.mark.integration

GRAFANA = Path(__file__).resolve().parents[2] / "deploy" / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
INTERVAL_SECONDS = 60
"""What Grafana would pick for $__interval on a range of a few hours."""

EXPECTED_COLUMNS = {
    "Events stored, by type": ("time", "type", "events"),
    "Identity verification outcomes": ("verify_reason", "events"),
    "Rejected messages, by code": ("time", "code", "rejected"),
    "Latest rejected messages": ("received_at", "topic", "partition", "offset", "code", "reason", "size"),
    "Decisions, by outcome": ("time", "decision", "decisions"),
    "Decisions, by policy": ("policy", "decision", "decisions"),
    "Latest denies": (
        "ts",
        "principal_id",
        "action",
        "resource_kind",
        "resource_id",
        "model_id",
        "policies",
        "verified",
    ),
    "Findings, by detector or rule": ("time", "detector", "findings"),
    "Findings, by detector and severity": ("stage", "detector_or_rule", "severity", "findings", "last_seen"),
    "Drift, per model and feature": (
        "model_id",
        "feature",
        "detector",
        "change",
        "findings",
        "last_drift",
        "max_shift_sigmas",
    ),
    "Drift findings over time, per model and feature": ("time", "series", "drifts"),
    "Alerts, by severity": ("time", "severity", "alerts"),
    "Alert states": ("state", "severity", "alerts"),
    "Latest alerts": (
        "fired_at",
        "severity",
        "title",
        "stage",
        "detector_or_rule",
        "model_id",
        "principal_id",
        "occurrences",
    ),
    "Notifications, by receiver and status": ("receiver", "status", "notifications"),
}
"""The columns each ClickHouse panel displays, in order: the contract between SQL and panel."""

PROMETHEUS_METRICS = frozenset(
    {
        "vigil_messages_total",
        "vigil_rejected_total",
        "vigil_verify_total",
        "vigil_decisions_total",
        "vigil_policy_decisions_total",
        "vigil_findings_total",
        "vigil_alerts_total",
        "vigil_notifications_total",
        "vigil_batch_duration_seconds_bucket",
        "vigil_batch_duration_seconds_sum",
        "vigil_batch_duration_seconds_count",
        "vigil_store_write_failures_total",
        "vigil_queue_depth",
        "vigil_consumer_lag",
        "vigil_committed_offset",
        "vigil_assigned_partitions",
    }
)
"""Series the long-running processes expose on /metrics (docs/operations.md#metrics)."""

_PROMQL_WORDS = frozenset(
    {"sum", "by", "rate", "increase", "histogram_quantile", "le", "without", "avg", "max"}
)


def _panels(kind: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            if panel["type"] != "row" and panel["datasource"]["type"] == kind:
                yield f"{path.stem}: {panel['title']}", panel


def expand_macros(sql: str, start: datetime, end: datetime) -> str:
    """The SQL as the ClickHouse data source sends it for the range ``start``..``end``.

    The macros of grafana-clickhouse-datasource v4 that the dashboards use; any other
    ``$`` variable is left in place, and fails the query.
    """

    def seconds(moment: datetime) -> int:
        return int(moment.timestamp())

    sql = re.sub(
        r"\$__timeFilter\(([^)]+)\)",
        lambda m: f"{m[1]} >= toDateTime({seconds(start)}) AND {m[1]} <= toDateTime({seconds(end)})",
        sql,
    )
    sql = re.sub(
        r"\$__timeInterval\(([^)]+)\)",
        lambda m: f"toStartOfInterval(toDateTime({m[1]}), INTERVAL {INTERVAL_SECONDS} second)",
        sql,
    )
    sql = sql.replace("$__fromTime", f"toDateTime({seconds(start)})")
    sql = sql.replace("$__toTime", f"toDateTime({seconds(end)})")
    return sql.replace("$__interval_s", str(INTERVAL_SECONDS))


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedStore]:
    with served_demo_store(tmp_path_factory.mktemp("dashboards")) as store:
        yield store


@pytest.fixture(scope="module")
def time_range(served: ServedStore) -> tuple[datetime, datetime]:
    """The demo's traffic, from the first event time to the last processing time, and an hour each side."""
    [(first, last)] = served.owner_rows(
        "SELECT least(min(ts), min(received_at)), greatest(max(ts), max(received_at)) FROM events_unique"
    )
    return first - timedelta(hours=1), last + timedelta(hours=1)


def test_every_clickhouse_panel_is_described() -> None:
    titles = [panel["title"] for _, panel in _panels("grafana-clickhouse-datasource")]
    assert sorted(titles) == sorted(EXPECTED_COLUMNS)


@pytest.mark.parametrize(
    ("name", "panel"),
    list(_panels("grafana-clickhouse-datasource")),
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_clickhouse_panel_answers_with_its_columns(
    name: str, panel: dict[str, Any], served: ServedStore, time_range: tuple[datetime, datetime]
) -> None:
    client = served.client()
    try:
        for target in panel["targets"]:
            sql = expand_macros(target["rawSql"], *time_range)
            assert "$" not in sql, f"{name}: an unexpanded variable in {sql}"
            result = client.query(sql)
            assert result.result_rows, f"{name}: no rows for the demo's traffic"
            assert result.column_names == EXPECTED_COLUMNS[panel["title"]]
            if target["queryType"] == "timeseries":
                assert all(isinstance(row[0], datetime) for row in result.result_rows)
                assert isinstance(result.result_rows[0][-1], int | float)
    finally:
        client.close()


def test_the_macros_leave_no_panel_outside_the_range(
    served: ServedStore, time_range: tuple[datetime, datetime]
) -> None:
    """A range before the traffic shows nothing: the panels really filter by time."""
    start, _ = time_range
    before = (start - timedelta(days=30), start - timedelta(days=29))
    client = served.client()
    try:
        for name, panel in _panels("grafana-clickhouse-datasource"):
            for target in panel["targets"]:
                if "$__timeFilter" in target["rawSql"]:
                    assert client.query(expand_macros(target["rawSql"], *before)).result_rows == [], name
    finally:
        client.close()


def test_prometheus_panels_name_only_exposed_metrics() -> None:
    for name, panel in _panels("prometheus"):
        for target in panel["targets"]:
            expression = re.sub(r"\{[^}]*\}|\[[^\]]*\]|\"[^\"]*\"", "", target["expr"])
            words = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expression)) - _PROMQL_WORDS
            labels = set(re.findall(r"by \(([^)]*)\)", target["expr"]))
            metrics = words - {label.strip() for group in labels for label in group.split(",")}
            assert metrics, f"{name}: no metric in {target['expr']}"
            assert metrics <= PROMETHEUS_METRICS, f"{name}: {metrics - PROMETHEUS_METRICS} not exposed"


SAMPLE_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}


def test_the_metric_list_is_what_the_processes_expose() -> None:
    metrics_module = pytest.importorskip("vigil.metrics", reason="the processes expose no metrics yet")
    exposed: set[str] = set()
    for family in metrics_module.Metrics().registry.collect():
        suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}.get(
            family.type, ("",)
        )
        exposed.update(family.name + suffix for suffix in suffixes)
    assert exposed == PROMETHEUS_METRICS


def test_promtool_parses_every_prometheus_panel(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool (Debian package prometheus) is not installed")
    rules = [
        {"record": f"vigil:panel_{number}", "expr": target["expr"].replace("$__rate_interval", "1m")}
        for number, (_, panel) in enumerate(_panels("prometheus"))
        for target in panel["targets"]
    ]
    assert rules
    path = tmp_path / "panels.rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "panels", "rules": rules}]}))
    checked = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_panels_use_the_provisioned_data_sources() -> None:
    provisioned = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "vigil.yaml").read_text())
    sources = {source["uid"]: source["type"] for source in provisioned["datasources"]}
    providers = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "vigil.yaml").read_text())
    assert providers["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards/vigil"
    uids = set()
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        uids.add(dashboard["uid"])
        for panel in dashboard["panels"]:
            if panel["type"] == "row":
                continue
            for target in panel["targets"]:
                assert sources[target["datasource"]["uid"]] == target["datasource"]["type"], panel["title"]
    assert len(uids) == len(DASHBOARDS)
