"""What alerting costs the stream, and what the notifier behind it can take.

Why this exists: alerting promises never to slow the stream, and the notifier
saves every batch before Kafka may move on. This measures, in one run so the
numbers are comparable:

1. ``AlertGate.admit`` per finding (in the pipeline thread), next to a floor that
   only applies the severity threshold.
2. Alert rows per second the notifier applies and saves (``AlertManager.ingest``,
   batches of 500 with their offsets, state database on disk), next to the bare
   dispatcher routing and grouping them in memory: what durability costs. Min,
   median and max of ``--runs`` alternating runs.
3. Memory per live alert held by the dispatcher (tracemalloc).

Findings spread over ``--alerts`` fingerprints, batches of 500 like the worker's.
Receivers are a console writing to /dev/null, so delivery I/O is not measured.

Usage::

    .venv/bin/python bench/alerting_overhead.py            # 200k findings, a few seconds
    .venv/bin/python bench/alerting_overhead.py --findings 50000 --alerts 500
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from alerting import AlertGate, AlertManager, ConfigSource, Dispatcher, ManagerOptions, ReceiverContext
from alerting.config import builtin_config
from schemas import SEVERITY_RANK
from schemas.records import AlertRow, FindingRow
from sinks.receivers import build_receiver

BATCH = 500


def findings(count: int, alerts: int) -> list[FindingRow]:
    now = datetime.now(UTC)
    return [
        FindingRow(
            finding_id=f"f{i}",
            ts=now,
            event_id=f"e{i}",
            model_id=f"model-{i % alerts}",
            principal_id=f"svc-{i % 7}",
            stage="detector" if i % 2 else "policy",
            detector_or_rule="feature-drift" if i % 2 else "export-needs-mfa",
            severity="medium",
            message="something happened",
            details="{}",
        )
        for i in range(count)
    ]


def per_item(seconds: float, items: int) -> float:
    return seconds / items * 1e6


def bench_gate(rows: list[FindingRow]) -> tuple[float, float, list[AlertRow]]:
    threshold = SEVERITY_RANK["medium"]
    started = time.perf_counter()
    kept = 0
    for start in range(0, len(rows), BATCH):
        kept += sum(1 for f in rows[start : start + BATCH] if SEVERITY_RANK[f.severity] >= threshold)
    floor = time.perf_counter() - started
    gate = AlertGate()
    out: list[AlertRow] = []
    started = time.perf_counter()
    for start in range(0, len(rows), BATCH):
        out.extend(gate.admit(rows[start : start + BATCH]))
    return per_item(floor, len(rows)), per_item(time.perf_counter() - started, len(rows)), out


def bench_dispatcher(alert_rows: list[AlertRow]) -> float:
    dispatcher = Dispatcher(builtin_config(console=True, slack=False), time.time, lambda: datetime.now(UTC))
    started = time.perf_counter()
    for row in alert_rows:
        dispatcher.ingest(row)
    return len(alert_rows) / (time.perf_counter() - started)


def bench_ingest(alert_rows: list[AlertRow]) -> float:
    with open(os.devnull, "w") as sink, tempfile.TemporaryDirectory() as state_dir:
        context = ReceiverContext(console_stream=sink, clock=time.time)
        source = ConfigSource(None, builtin_config(console=True, slack=False))
        options = ManagerOptions(state_dir=Path(state_dir))
        manager = AlertManager(
            source, context, None, options, receiver_factory=build_receiver, threaded=False
        )
        started = time.perf_counter()
        for start in range(0, len(alert_rows), BATCH):
            batch = alert_rows[start : start + BATCH]
            manager.ingest(batch, [("ai.alerts", 0, start + i) for i in range(len(batch))])
        rate = len(alert_rows) / (time.perf_counter() - started)
        manager.close(timeout=0)
    return rate


def spread(values: list[float]) -> str:
    return f"{min(values):,.0f} / {statistics.median(values):,.0f} / {max(values):,.0f}"


def bench_memory(alert_rows: list[AlertRow]) -> float:
    distinct = {r.fingerprint: r for r in alert_rows}
    config = builtin_config(console=True, slack=False)
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    dispatcher = Dispatcher(config, time.monotonic, lambda: datetime.now(UTC))
    for row in distinct.values():
        dispatcher.ingest(row)
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(s.size_diff for s in after.compare_to(before, "filename"))
    return grown / max(1, len(distinct))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--findings", type=int, default=200_000)
    parser.add_argument("--alerts", type=int, default=1_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    rows = findings(args.findings, args.alerts)
    floor, gate, alert_rows = bench_gate(rows)
    saved: list[float] = []
    bare: list[float] = []
    for _ in range(args.runs):  # alternating, so both see the same machine
        saved.append(bench_ingest(alert_rows))
        bare.append(bench_dispatcher(alert_rows))
    memory = bench_memory(alert_rows)
    print(f"{args.findings:,} findings over {args.alerts:,} alerts, batches of {BATCH}")
    print(f"{'measure':<52}{'vigil':>12}{'baseline':>12}")
    print(f"{'per finding in the pipeline (us): gate vs threshold':<52}{gate:>12.2f}{floor:>12.2f}")
    print(f"{'alert rows/s saved by the notifier (min/median/max)':<52}{spread(saved):>24}")
    print(f"{'alert rows/s, dispatcher alone in memory (min/med/max)':<52}{spread(bare):>24}")
    print(f"{'memory per live alert in the dispatcher (KiB)':<52}{memory / 1024:>12.1f}{'':>12}")
    print(f"{'alert rows from the gate':<52}{len(alert_rows):>12,}{'':>12}")


if __name__ == "__main__":
    main()
