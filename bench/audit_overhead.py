"""What the audit ledger costs on the write path, and how fast `vigil audit verify` runs.

Why this exists: every decision, finding and alert becomes a chained ledger entry
in the same store write as the batch, and the verifier has to get through a day of
a busy stream in minutes. Both are measured next to a baseline in the same run:

1. Write path. Real pipeline output (``vigil.demo`` traffic through
   ``build_pipeline``, spread over 4 partitions like a Kafka topic, batches of 500
   like the worker) is stored on a fresh embedded store twice: through the plain
   ``ClickHouseStore`` (baseline) and through the ``AuditedStore`` (ledger entries,
   signed checkpoints, exported copies). Reported per event; the difference is the
   ledger's overhead. The ledger's CPU share (``Ledger.prepare``, no I/O) is
   measured alone too. The first batch of each run is a warm-up and not timed.
2. Verify. A ledger of ``--entries`` entries in one stream is written through the
   ``AuditedStore`` (decisions in batches of 5000, so one signed checkpoint per
   5000 entries), then read back three ways, each in its own process so peak RSS
   is its own: a plain ordered scan of the ledger columns (baseline: I/O only), the
   chain verification (``Verifier``), and the tables cross-check.

Every store is opened in a child process (chDB allows one directory per process);
``VIGIL_*`` variables are ignored so the defaults are measured.

Usage::

    .venv/bin/python bench/audit_overhead.py                                  # 20k events, 1M entries
    .venv/bin/python bench/audit_overhead.py --events 4000 --entries 100000   # smoke run
    .venv/bin/python bench/audit_overhead.py --json results.json
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
# The repository before bench/: otherwise this very file would shadow the ``audit`` package.
sys.path.insert(0, str(BENCH_DIR.parent))

BATCH_SIZE = 500
"""The worker's default ``VIGIL_KAFKA_BATCH_SIZE``."""
PARTITIONS = 4
VERIFY_BATCH = 5000
STREAM_TOPIC = "bench.ai.inference"


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _settings(data_dir: Path) -> Any:
    from vigil.settings import Settings

    return Settings(data_dir=data_dir)


# --- parent: workload ---------------------------------------------------------------


def make_batches(directory: Path, events: int) -> tuple[Path, int]:
    """Run demo traffic through the pipeline; pickle each batch's tables."""
    from vigil.demo import DemoTraffic, write_demo_inventory, write_demo_keys
    from vigil.pipeline import RawMessage
    from vigil.runtime import build_pipeline

    settings = _settings(directory / "pipeline")
    secrets = write_demo_keys(settings.keys_path)
    write_demo_inventory(settings.data_dir / "inventory.yaml")
    pipeline = build_pipeline(settings)
    lines = list(DemoTraffic(secrets, events=events, seed=11).lines())
    messages = [
        RawMessage(value=v, topic=STREAM_TOPIC, partition=i % PARTITIONS, offset=i // PARTITIONS)
        for i, v in enumerate(lines)
    ]
    path = directory / "batches.pickle"
    stored = 0
    with path.open("wb") as handle:
        for start in range(0, len(messages), BATCH_SIZE):
            tables = pipeline.process(messages[start : start + BATCH_SIZE]).tables()
            stored += len(tables["events"])
            pickle.dump(tables, handle)
    return path, stored


def _load(path: Path) -> list[dict[str, list[Any]]]:
    batches = []
    with path.open("rb") as handle:
        while True:
            try:
                batches.append(pickle.load(handle))
            except EOFError:
                return batches


# --- children -------------------------------------------------------------------------


def child_write(mode: str, batches_file: Path, data_dir: Path) -> dict[str, Any]:
    from audit.ledger import Ledger, NoHistory
    from audit.store import audited_store, load_signer
    from sinks.clickhouse import ClickHouseStore, connect, migrate

    batches = _load(batches_file)
    events = sum(len(b["events"]) for b in batches[1:])
    records = sum(len(b["decisions"]) + len(b["findings"]) + len(b["alerts"]) for b in batches[1:])
    settings = _settings(data_dir)
    if mode == "prepare":
        ledger = Ledger(NoHistory(), load_signer(settings))
        ledger.commit(ledger.prepare(batches[0]))
        started = time.perf_counter()
        for tables in batches[1:]:
            ledger.commit(ledger.prepare(tables))
        seconds = time.perf_counter() - started
        return {"seconds": seconds, "events": events, "records": records, "rss": _peak_rss_mib()}
    client = connect(settings.store_url)
    migrate(client)
    store = (
        ClickHouseStore(client) if mode == "plain" else audited_store(client, settings, load_signer(settings))
    )
    store.write(batches[0])
    started = time.perf_counter()
    for tables in batches[1:]:
        store.write(tables)
    seconds = time.perf_counter() - started
    sizes = dict(
        client.query(
            "SELECT table, sum(data_compressed_bytes) FROM system.parts "
            "WHERE active AND database = currentDatabase() GROUP BY table"
        ).result_rows
    )
    entries = int(client.query("SELECT count() FROM audit_ledger").result_rows[0][0])
    store.close()
    return {
        "seconds": seconds,
        "events": events,
        "records": records,
        "entries": entries,
        "ledger_bytes": int(sizes.get("audit_ledger", 0)),
        "record_bytes": int(sum(sizes.get(t, 0) for t in ("decisions", "findings", "alerts"))),
        "rss": _peak_rss_mib(),
    }


def child_generate(entries: int, batches_file: Path, data_dir: Path) -> dict[str, Any]:
    """A one-stream ledger of ``entries`` decisions, written as the worker writes them."""
    from audit.store import audited_store, load_signer
    from sinks.clickhouse import connect, migrate

    sample = _load(batches_file)[0]
    event, decision = sample["events"][0], sample["decisions"][0]
    settings = _settings(data_dir)
    client = connect(settings.store_url)
    migrate(client)
    store = audited_store(client, settings, load_signer(settings))
    started = time.perf_counter()
    for start in range(0, entries, VERIFY_BATCH):
        ids = [f"bench-{n:09d}" for n in range(start, min(start + VERIFY_BATCH, entries))]
        store.write(
            {
                "events": [
                    event._replace(event_id=i, topic=STREAM_TOPIC, partition=0, offset=start + k)
                    for k, i in enumerate(ids)
                ],
                "decisions": [decision._replace(event_id=i) for i in ids],
            }
        )
    seconds = time.perf_counter() - started
    store.close()
    return {"seconds": seconds, "entries": entries, "rss": _peak_rss_mib()}


def child_read(mode: str, data_dir: Path) -> dict[str, Any]:
    from audit.config import export_dir, published_key_path
    from audit.export import DirectoryExport
    from audit.keys import load_public_keys
    from audit.source import ClickHouseSource
    from audit.tables_check import check_tables
    from audit.verify import Verifier
    from sinks.clickhouse import connect

    settings = _settings(data_dir)
    client = connect(settings.store_url)
    source = ClickHouseSource(client)
    stream = f"{STREAM_TOPIC}:0"
    result: dict[str, Any] = {}
    started = time.perf_counter()
    if mode == "scan":
        result["entries"] = sum(1 for _ in source.entries(stream, 1, None))
    elif mode == "verify":
        copies = list(DirectoryExport(export_dir(settings)).read())
        report = Verifier(source, load_public_keys([published_key_path(settings)]), copies).run()
        if not report.ok:
            raise SystemExit(f"the benchmark ledger does not verify: {report.problems[:3]}")
        result["entries"] = report.entries
        result["checkpoints"] = report.streams[0].checkpoints_matched
    else:
        problems = check_tables(source)
        if problems:
            raise SystemExit(f"the benchmark tables do not match: {problems[:3]}")
        result["entries"] = int(client.query("SELECT count() FROM audit_ledger").result_rows[0][0])
    result["seconds"] = time.perf_counter() - started
    result["rss"] = _peak_rss_mib()
    client.close()
    return result


def _child(*args: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    env["PYTHONPATH"] = str(BENCH_DIR.parent)
    done = subprocess.run(
        [sys.executable, __file__, "--child", *args], env=env, capture_output=True, text=True, check=False
    )
    if done.returncode:
        raise SystemExit(f"child {args} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# --- report ----------------------------------------------------------------------------


def run(events: int, entries: int, rounds: int) -> dict[str, Any]:
    results: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cpus, Python {platform.python_version()}",
        "events": events,
        "entries": entries,
    }
    with tempfile.TemporaryDirectory(prefix="vigil-bench-audit-") as tmp:
        root = Path(tmp)
        batches_file, stored = make_batches(root, events)
        results["stored_events"] = stored
        writes: dict[str, list[dict[str, Any]]] = {"plain": [], "audited": [], "prepare": []}
        for r in range(rounds):
            for mode in writes:
                writes[mode].append(_child("write", mode, str(batches_file), str(root / f"{mode}-{r}")))
        results["write"] = {mode: min(runs, key=lambda x: x["seconds"]) for mode, runs in writes.items()}
        ledger_dir = root / "ledger"
        results["generate"] = _child("generate", str(entries), str(batches_file), str(ledger_dir))
        results["read"] = {
            mode: _child("read", mode, str(ledger_dir)) for mode in ("scan", "verify", "tables")
        }
    return results


def report(results: dict[str, Any]) -> None:
    write = results["write"]
    plain, audited, prepare = write["plain"], write["audited"], write["prepare"]
    events = plain["events"]

    def per_event(seconds: float) -> float:
        return seconds / events * 1e6

    print(f"\n{results['machine']}; {events:,} events timed")
    print(f"in batches of {BATCH_SIZE} over {PARTITIONS} partitions")
    print(f"{audited['records'] / events:.2f} records (decisions, findings, alerts) per event\n")
    print(f"{'write path':<44} {'us/event':>10} {'events/s':>12} {'peak RSS MiB':>13}")
    rows = [
        ("store write, no ledger (baseline)", plain),
        ("store write with ledger (AuditedStore)", audited),
        ("ledger CPU alone (Ledger.prepare)", prepare),
    ]
    for name, run_ in rows:
        us = per_event(run_["seconds"])
        print(f"{name:<44} {us:>10.1f} {1e6 / us:>12,.0f} {run_['rss']:>13.0f}")
    overhead = per_event(audited["seconds"] - plain["seconds"])
    print(f"{'ledger overhead (difference)':<44} {overhead:>10.1f}")
    print(
        f"ledger on disk: {audited['ledger_bytes'] / 2**20:.1f} MiB for {audited['entries']:,} entries "
        f"({audited['ledger_bytes'] / max(audited['entries'], 1):.0f} B/entry); decisions+findings+alerts "
        f"{audited['record_bytes'] / 2**20:.1f} MiB"
    )
    generate, read = results["generate"], results["read"]
    n = results["entries"]
    title = f"verify, one stream of {n:,} entries"
    print(f"\n{title:<44} {'seconds':>10} {'entries/s':>12} {'peak RSS MiB':>13}")
    for name, key in (
        ("ordered scan, no checks (baseline)", "scan"),
        ("chain + checkpoints (vigil audit verify)", "verify"),
        ("tables cross-check (decisions vs ledger)", "tables"),
    ):
        r = read[key]
        print(f"{name:<44} {r['seconds']:>10.1f} {r['entries'] / r['seconds']:>12,.0f} {r['rss']:>13.0f}")
    print(f"(writing that ledger through the AuditedStore took {generate['seconds']:.1f}s)")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        kind, *rest = sys.argv[2:]
        if kind == "write":
            out = child_write(rest[0], Path(rest[1]), Path(rest[2]))
        elif kind == "generate":
            out = child_generate(int(rest[0]), Path(rest[1]), Path(rest[2]))
        else:
            out = child_read(rest[0], Path(rest[1]))
        print(json.dumps(out))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=2, help="write runs per mode; the fastest counts")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    results = run(args.events, args.entries, args.rounds)
    report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
