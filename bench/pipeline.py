"""Throughput and memory of ``vigil run`` next to a naive "just store it" consumer.

Why this exists: the pipeline promises governance (schema validation, HMAC identity,
Cedar decisions, drift detection, alerting) on every event. This benchmark answers
what that costs, in one run on one machine so the numbers are comparable:

1. ``vigil run --input FILE`` as a subprocess, on a fresh embedded store: events/s
   from the wall clock around the process (start-up included) and from the command's
   own summary line (its loop only), plus the child's CPU time and peak RSS.
2. ``bench/baseline_ingest.py`` the same way: orjson.loads per line and the raw line
   inserted into chDB in batches of 2000 through the same clickhouse-connect client.
3. In-process stage costs over the same events in batches of 2000, without storage:
   decode, decode+verify, building policy requests, the policy stage cached and
   uncached, drift updates, and the whole ``Pipeline.process``.

Each subprocess runs under a tiny wrapper interpreter that starts it, waits and
reports ``getrusage(RUSAGE_CHILDREN)``: ``ru_maxrss`` of a process's children is the
maximum over all of them, so measuring in this process would mix the two runs.

Events come from ``vigil.demo.DemoTraffic`` (fixed seed: the same mix, incidents and
malformed lines every time; only timestamps and the random demo keys differ).

Usage::

    .venv/bin/python bench/pipeline.py                      # 100k events, a few minutes
    .venv/bin/python bench/pipeline.py --events 5000        # smoke run
    .venv/bin/python bench/pipeline.py --json results.json  # also write the results
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import cedarpy
import orjson

from detectors.feature_drift import FeatureDriftMonitor
from identity.keyring import Keyring, load_keyring
from identity.verify import Verdict, verify
from policies.bundle import PolicyBundle, load_bundle
from policies.engine import PolicyEngine
from policies.requests import AuthzRequest, request_for
from schemas.decode import Decoded, decode
from schemas.events import InferenceEvent
from streams.local import batches, messages_from_lines
from vigil.demo import DemoTraffic, write_demo_keys
from vigil.pipeline import Pipeline, RawMessage

BENCH_DIR = Path(__file__).resolve().parent
BATCH_SIZE = 2000
"""What ``streams/local.py`` uses for ``vigil run``; the baseline uses the same."""
CEDAR_SAMPLE = 2000
"""Requests sent one by one to cedarpy: ~0.3 ms each, so a sample, not the stream."""
PACKAGES = (
    *("chdb", "chdb-core", "clickhouse-connect", "pydantic", "pydantic-core"),
    *("cedarpy", "orjson", "river"),
)
SUMMARY = re.compile(r"(\d+) messages in ([\d.]+)s")

# Runs in a separate interpreter so RUSAGE_CHILDREN covers exactly one child.
WRAPPER = """
import json, resource, subprocess, sys, time
spec = json.loads(sys.argv[1])
with open(spec["stdout"], "wb") as out, open(spec["stderr"], "wb") as err:
    started = time.perf_counter()
    code = subprocess.call(spec["argv"], stdout=out, stderr=err, env=spec["env"], cwd=spec["cwd"])
    wall = time.perf_counter() - started
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"code": code, "wall": wall, "maxrss": usage.ru_maxrss,
                  "cpu": usage.ru_utime + usage.ru_stime}))
"""


@dataclass
class Row:
    """One line of the results table; rates are per item, ``items`` says what an item is."""

    name: str
    items: int
    seconds: float
    unit: str = "event"
    peak_rss_mib: float | None = None
    cpu_seconds: float | None = None
    note: str = ""
    all_seconds: list[float] = field(default_factory=list)

    @property
    def us_per_item(self) -> float:
        return self.seconds / self.items * 1e6 if self.items else float("nan")

    @property
    def per_second(self) -> float:
        return self.items / self.seconds if self.seconds else float("nan")

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "us_per_item": self.us_per_item, "per_second": self.per_second}


@dataclass
class Workload:
    """The generated events on disk plus everything the in-process stages need in memory."""

    directory: Path
    events_file: Path
    keys_file: Path
    messages: list[RawMessage]
    batches: list[list[RawMessage]]
    keyring: Keyring
    bundle: PolicyBundle


def generate(directory: Path, events: int, seed: int) -> Workload:
    """Write demo keys and ``events`` ordinary events (plus the demo's incidents) as JSON lines."""
    keys_file = directory / "keys.yaml"
    events_file = directory / "events.jsonl"
    secrets_by_source = write_demo_keys(keys_file)
    with events_file.open("wb") as handle:
        for line in DemoTraffic(secrets_by_source, events=events, seed=seed).lines():
            handle.write(line + b"\n")
    with events_file.open("rb") as handle:
        messages = list(messages_from_lines(handle, events_file.name))
    return Workload(
        directory=directory,
        events_file=events_file,
        keys_file=keys_file,
        messages=messages,
        batches=list(batches(messages, BATCH_SIZE)),
        keyring=load_keyring(keys_file),
        bundle=load_bundle(),
    )


# --- subprocess runs -------------------------------------------------------------------


@dataclass
class ChildRun:
    wall: float
    cpu: float
    peak_rss_mib: float
    loop_seconds: float
    messages: int
    summary: str


def run_child(name: str, argv: Sequence[str], env: dict[str, str], workdir: Path) -> ChildRun:
    """Run ``argv`` under the wrapper; parse the ``N messages in Xs`` summary it prints."""
    stdout, stderr = workdir / f"{name}.out", workdir / f"{name}.err"
    spec = {"argv": list(argv), "env": env, "cwd": str(workdir), "stdout": str(stdout), "stderr": str(stderr)}
    wrapped = subprocess.run(
        [sys.executable, "-I", "-c", WRAPPER, json.dumps(spec)], capture_output=True, check=True, text=True
    )
    report = json.loads(wrapped.stdout)
    output = stdout.read_text(errors="replace")
    if report["code"] != 0:
        tail = stderr.read_text(errors="replace")[-2000:]
        raise SystemExit(f"{name} exited with {report['code']}:\n{output[-2000:]}\n{tail}")
    match = SUMMARY.search(output)
    if match is None:
        raise SystemExit(f"{name}: no summary line in its output:\n{output[-2000:]}")
    # ru_maxrss is KiB on Linux, bytes on macOS.
    rss_bytes = report["maxrss"] * (1 if sys.platform == "darwin" else 1024)
    return ChildRun(
        wall=report["wall"],
        cpu=report["cpu"],
        peak_rss_mib=rss_bytes / 2**20,
        loop_seconds=float(match.group(2)),
        messages=int(match.group(1)),
        summary=match.group(0) + output[match.end() :].split("\n", 1)[0],
    )


def child_env(work: Workload, data_dir: Path) -> dict[str, str]:
    """The caller's environment minus any VIGIL_* (a stray Slack token or server URL), plus ours."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    env.update(
        VIGIL_DATA_DIR=str(data_dir),
        VIGIL_KEYS_FILE=str(work.keys_file),
        VIGIL_CONFIG=str(work.directory / "no-such-vigil.toml"),
    )
    return env


def subprocess_rows(work: Workload, runs: int) -> tuple[list[Row], dict[str, ChildRun]]:
    """Baseline and ``vigil run`` alternately, each on a fresh store, ``runs`` times; keep the fastest."""
    vigil = Path(sys.executable).parent / "vigil"
    if not vigil.exists():
        raise SystemExit(f"{vigil} not found: run with the project's venv (.venv/bin/python)")
    best: dict[str, ChildRun] = {}
    for attempt in range(runs):
        cases = {
            "baseline": [
                sys.executable,
                str(BENCH_DIR / "baseline_ingest.py"),
                "--input",
                str(work.events_file),
                "--store",
                str(work.directory / f"baseline-store-{attempt}"),
                "--batch-size",
                str(BATCH_SIZE),
            ],
            "vigil": [str(vigil), "run", "--input", str(work.events_file)],
        }
        for name, argv in cases.items():
            env = child_env(work, work.directory / f"vigil-data-{attempt}")
            print(f"  running {name} ({attempt + 1}/{runs})...", file=sys.stderr, flush=True)
            result = run_child(f"{name}-{attempt}", argv, env, work.directory)
            if name not in best or result.wall < best[name].wall:
                best[name] = result
    rows = []
    labels = {"vigil": "vigil run", "baseline": "baseline: orjson.loads + raw insert"}
    for name in ("vigil", "baseline"):
        result = best[name]
        rows.append(
            Row(
                f"{labels[name]} (wall, start-up incl.)",
                len(work.messages),
                result.wall,
                peak_rss_mib=result.peak_rss_mib,
                cpu_seconds=result.cpu,
                note="subprocess",
            )
        )
        rows.append(
            Row(f"{labels[name]} (its own loop rate)", result.messages, result.loop_seconds, note="summary")
        )
    return rows, best


# --- in-process stages -----------------------------------------------------------------


def best_of(repeats: int, body: Callable[[], object]) -> list[float]:
    """Seconds of each run; the table shows the fastest (least disturbed by other load)."""
    times = []
    for _ in range(repeats):
        gc.collect()
        started = time.perf_counter()
        body()
        times.append(time.perf_counter() - started)
    return times


def stage_rows(work: Workload, repeats: int) -> tuple[list[Row], str]:
    """Per-stage costs on the same batches, no storage; returns rows and the cache_size=0 finding."""
    messages, keyring, bundle = work.messages, work.keyring, work.bundle
    rows: list[Row] = []

    def add(name: str, items: int, body: Callable[[], object], unit: str = "event", note: str = "") -> None:
        times = best_of(repeats, body)
        rows.append(Row(name, items, min(times), unit=unit, note=note, all_seconds=times))

    def parse_only() -> None:
        for message in messages:
            try:
                orjson.loads(message.value)
            except orjson.JSONDecodeError:
                continue

    def decode_only() -> None:
        for message in messages:
            decode(message.value)

    def decode_verify() -> None:
        for message in messages:
            decoded = decode(message.value)
            if isinstance(decoded, Decoded):
                verify(decoded.event, decoded.canonical, keyring)

    add("orjson.loads only (the baseline's parse)", len(messages), parse_only)
    add("decode (schemas.decode.decode)", len(messages), decode_only)
    add("decode + verify (HMAC)", len(messages), decode_verify)

    # Inputs for the later stages, built once, outside the timings.
    accepted: list[list[tuple[Decoded, Verdict]]] = []
    for batch in work.batches:
        items = []
        for message in batch:
            decoded = decode(message.value)
            if isinstance(decoded, Decoded):
                items.append((decoded, verify(decoded.event, decoded.canonical, keyring)))
        accepted.append(items)
    requests: list[list[AuthzRequest]] = [[request_for(d.event, v) for d, v in batch] for batch in accepted]
    n_requests = sum(map(len, requests))
    drift_inputs = [
        (d.event.model_id, d.event.features)
        for batch in accepted
        for d, v in batch
        if v.verified and isinstance(d.event, InferenceEvent)
    ]
    distinct = len({r for batch in requests for r in batch})
    add(
        "request_for (build Cedar requests)",
        n_requests,
        lambda: [[request_for(d.event, v) for d, v in batch] for batch in accepted],
        unit="request",
    )

    def policy_cached() -> None:
        engine = PolicyEngine(bundle)
        for batch in requests:
            engine.decide_many(batch)

    def policy_fresh_engine_per_batch() -> None:
        for batch in requests:
            PolicyEngine(bundle).decide_many(batch)

    add(
        "policy: decide_many, cache on (default)",
        n_requests,
        policy_cached,
        unit="request",
        note=f"{distinct} distinct requests in the stream",
    )
    add(
        "policy: fresh PolicyEngine per batch",
        n_requests,
        policy_fresh_engine_per_batch,
        unit="request",
        note="no cross-batch cache; still dedups a batch",
    )
    sample = [r for batch in requests for r in batch][:CEDAR_SAMPLE]

    def cedar_per_request() -> None:
        for request in sample:
            cedarpy.is_authorized(request.to_cedar(), bundle.policy_set, request.entities())

    add(
        f"policy: cedarpy per request (first {len(sample)})",
        len(sample),
        cedar_per_request,
        unit="request",
        note="no cache, no dedup",
    )
    cache_zero = probe_cache_size_zero(bundle, requests)

    def drift_only() -> None:
        monitor = FeatureDriftMonitor()
        for model_id, features in drift_inputs:
            monitor.update(model_id, features)

    add("drift: FeatureDriftMonitor.update", len(drift_inputs), drift_only, note="verified inference only")

    def full_pipeline() -> None:
        pipeline = Pipeline(keyring, bundle)
        for batch in work.batches:
            pipeline.process(batch)

    add("Pipeline.process (all stages, no store)", len(messages), full_pipeline)
    return rows, cache_zero


def probe_cache_size_zero(bundle: PolicyBundle, requests: list[list[AuthzRequest]]) -> str:
    """Does ``PolicyEngine(bundle, cache_size=0)`` disable caching? Report what it actually does."""
    engine = PolicyEngine(bundle, cache_size=0)
    for number, batch in enumerate(requests):
        try:
            engine.decide_many(batch)
        except KeyError:
            return (
                f"PolicyEngine(cache_size=0) raised KeyError on batch {number} after "
                f"{engine.cache_hits} cache hits and {engine.evaluated} evaluations: it is not a "
                "cache-off switch (entries counted as hits are cleared before being read), so the "
                "uncached cost is measured with a fresh PolicyEngine per batch instead"
            )
    return (
        f"PolicyEngine(cache_size=0) ran: {engine.cache_hits} cache hits, {engine.evaluated} "
        "evaluations (hits > 0 means it does not disable caching)"
    )


# --- report ----------------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "-"
    cpu_model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        models = [line for line in cpuinfo.read_text().splitlines() if line.startswith("model name")]
        cpu_model = models[0].split(":", 1)[1].strip() if models else ""
    return {
        "cpus": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": cpu_model,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average_at_start": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "versions": versions,
    }


def render(rows: list[Row]) -> str:
    header = ("measurement", "items", "µs/item", "items/s", "peak RSS MiB", "CPU s", "note")
    lines = [header]
    for row in rows:
        lines.append(
            (
                row.name,
                f"{row.items:,} {row.unit}s",
                f"{row.us_per_item:,.1f}",
                f"{row.per_second:,.0f}",
                f"{row.peak_rss_mib:,.0f}" if row.peak_rss_mib is not None else "",
                f"{row.cpu_seconds:,.1f}" if row.cpu_seconds is not None else "",
                row.note,
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for number, line in enumerate(lines):
        numbers = zip(line[1:-1], widths[1:-1], strict=True)
        cells = [line[0].ljust(widths[0]), *(c.rjust(w) for c, w in numbers), line[-1].ljust(widths[-1])]
        out.append("| " + " | ".join(cells) + " |")
        if number == 0:
            out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000, help="ordinary demo events (default 100000)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3, help="in-process runs per stage; fastest shown")
    parser.add_argument("--runs", type=int, default=1, help="subprocess runs per case; fastest shown")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (events, stores, logs)")
    args = parser.parse_args()

    info = machine_info()
    versions = ", ".join(f"{k} {v}" for k, v in info["versions"].items())
    print(f"Vigil pipeline benchmark: {args.events:,} demo events, seed {args.seed}, batch {BATCH_SIZE}")
    print(f"Machine: {info['cpus']} CPUs ({info['cpu_model'] or info['platform']}), Python {info['python']}")
    print(f"Load average at start: {info['load_average_at_start']}")
    print(f"Packages: {versions}\n", flush=True)

    temp = tempfile.TemporaryDirectory(prefix="vigil-bench-")
    directory = Path(temp.name)
    try:
        print("  generating events...", file=sys.stderr, flush=True)
        work = generate(directory, args.events, args.seed)
        size_mib = work.events_file.stat().st_size / 2**20
        print(f"Input: {len(work.messages):,} lines ({size_mib:.1f} MiB), {len(work.batches)} batches\n")
        child_rows, children = subprocess_rows(work, args.runs)
        print("  in-process stages...", file=sys.stderr, flush=True)
        rows, cache_zero = stage_rows(work, args.repeat)
    finally:
        if args.keep:
            print(f"kept {directory}", file=sys.stderr)
        else:
            temp.cleanup()

    _, vigil_loop, _, base_loop = child_rows
    full = rows[-1]
    overhead = Row(
        "derived: vigil run loop minus Pipeline.process",
        vigil_loop.items,
        max(vigil_loop.seconds - full.us_per_item * vigil_loop.items / 1e6, 0.0),
        note="storage (rows -> chDB) + driver",
    )
    table = [*child_rows, *rows, overhead]
    print(render(table))
    print()
    vigil, base = children["vigil"], children["baseline"]
    print(f"vigil run:  {vigil.summary}")
    print(f"baseline:   {base.summary}")
    print(
        f"vigil run vs baseline: {base_loop.per_second / vigil_loop.per_second:.1f}x the time per event "
        f"(loop), {vigil.wall / base.wall:.1f}x wall, {vigil.cpu / base.cpu:.1f}x CPU time, "
        f"{vigil.peak_rss_mib / base.peak_rss_mib:.1f}x peak RSS"
    )
    print(f"Policy cache probe: {cache_zero}")
    print(f"In-process rows: fastest of {args.repeat}; subprocess rows: fastest of {args.runs}.")

    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "machine": info,
                    "config": {
                        "events": args.events,
                        "lines": len(work.messages),
                        "seed": args.seed,
                        "batch_size": BATCH_SIZE,
                        "repeat": args.repeat,
                        "runs": args.runs,
                    },
                    "rows": [row.as_json() for row in table],
                    "children": {name: asdict(child) for name, child in children.items()},
                    "policy_cache_size_0": cache_zero,
                },
                indent=2,
            )
            + "\n"
        )
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
