"""Throughput and memory of ``vigil run`` next to a naive "just store it" consumer.

Why this exists: the pipeline promises governance (schema validation, signature and
replay checks, Cedar decisions, detectors, an audit ledger, alerting) on every event. This benchmark answers
what that costs, in one run on one machine so the numbers are comparable:

1. ``vigil run --input FILE`` as a subprocess on a fresh embedded store: events/s
   from the wall clock around the process (start-up included) and from the command's
   own summary line (its loop only), plus the child's CPU time and peak RSS.
2. ``bench/baseline_ingest.py`` the same way: orjson.loads per line and the raw line
   inserted into chDB in batches of 2000 through the same clickhouse-connect client.
3. In-process stage costs over the same events in batches of 2000, without storage:
   decode, decode+verify, ``Pipeline.process`` (as shipped and with two garbage
   collector settings), building policy requests, the policy stage cached and
   uncached, and the detectors.

Each subprocess runs under a tiny wrapper interpreter that starts it, waits and
reports ``getrusage(RUSAGE_CHILDREN)``: ``ru_maxrss`` of a process's children is the
maximum over all of them, so measuring from this process would mix the two runs.

In-process inputs are kept as a list of ``bytes`` (not tracked by the cyclic garbage
collector) and turned into messages batch by batch, as ``vigil run`` does, so this
process's heap does not inflate the pipeline's GC cost beyond what ``vigil run`` pays.

Events come from ``vigil.demo.DemoTraffic`` (fixed seed: the same mix, incidents and
malformed lines every time; only timestamps and the random demo keys differ).
``VIGIL_*`` variables are ignored: the benchmark measures the default settings.

Usage::

    .venv/bin/python bench/pipeline.py                      # 100k events, ~4 minutes
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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import orjson

# Run as a script, bench/ is sys.path[0], and a module there (such as bench/audit_overhead.py)
# would shadow a product package of the same name: import the product, not the bench.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)

import vigil
from identity.verify import Verdict
from policies.engine import PolicyEngine
from policies.requests import AuthzRequest, request_for
from schemas.decode import Decoded, decode
from schemas.events import Event
from streams.local import batches, messages_from_lines
from vigil.demo import DemoTraffic, write_demo_inventory, write_demo_keys
from vigil.pipeline import Pipeline, RawMessage
from vigil.runtime import build_pipeline
from vigil.settings import Settings

BENCH_DIR = Path(__file__).resolve().parent
BATCH_SIZE = 2000
"""What ``streams/local.py`` uses for ``vigil run``; the baseline uses the same."""
TOPIC = "events.jsonl"
UNCACHED_SAMPLE = 2000
"""Requests decided one by one without cache: ~0.15-0.3 ms each, so a sample, not the stream."""
PACKAGES = (
    *("chdb", "chdb-core", "clickhouse-connect", "pydantic", "pydantic-core"),
    *("cedarpy", "orjson", "river"),
)
GC_THRESHOLD = (50_000, 20, 100)
"""Fewer, later collections (the default is 700, 10, 10): a run keeps growing long-lived
state (replay memory, detector state, and in ``vigil run`` the ledger's dedupe window)
that every full collection traverses again."""
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
    """One line of the results table; rates are per item, ``unit`` says what an item is."""

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

    @property
    def cpu_us_per_item(self) -> float | None:
        """CPU time per item: steadier than wall time when other processes share the CPUs."""
        return self.cpu_seconds / self.items * 1e6 if self.cpu_seconds is not None and self.items else None

    def as_json(self) -> dict[str, Any]:
        derived = {"us_per_item": self.us_per_item, "per_second": self.per_second}
        return {**asdict(self), **derived, "cpu_us_per_item": self.cpu_us_per_item}


@dataclass
class Workload:
    """The generated events on disk, and in memory as one ``bytes`` per message."""

    directory: Path
    events_file: Path
    keys_file: Path
    settings: Settings
    values: list[bytes]

    def messages(self) -> Iterator[RawMessage]:
        return messages_from_lines(self.values, TOPIC)

    def batches(self) -> Iterator[list[RawMessage]]:
        return batches(self.messages(), BATCH_SIZE)


def generate(directory: Path, events: int, seed: int) -> Workload:
    """Write demo keys and ``events`` ordinary events (plus the demo's incidents) as JSON lines."""
    keys_file = directory / "keys.yaml"
    events_file = directory / "events.jsonl"
    secrets_by_source = write_demo_keys(keys_file)
    with events_file.open("wb") as handle:
        for line in DemoTraffic(secrets_by_source, events=events, seed=seed).lines():
            handle.write(line + b"\n")
    with events_file.open("rb") as handle:
        values = [m.value for m in messages_from_lines(handle, TOPIC)]
    settings = Settings(data_dir=data_dir(directory, "in-process"), keys_file=keys_file)
    return Workload(directory, events_file, keys_file, settings, values)


def data_dir(directory: Path, name: str) -> Path:
    """A fresh ``VIGIL_DATA_DIR`` holding the demo inventory, as ``vigil demo`` sets it up."""
    path = directory / name
    write_demo_inventory(path / "inventory.yaml")
    return path


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


def child_env(work: Workload, name: str) -> dict[str, str]:
    """This environment (already without VIGIL_*), pointed at a fresh store and the demo keys."""
    return {
        **os.environ,
        "VIGIL_DATA_DIR": str(data_dir(work.directory, name)),
        "VIGIL_KEYS_FILE": str(work.keys_file),
    }


def subprocess_rows(work: Workload, runs: int) -> tuple[list[Row], dict[str, ChildRun]]:
    """Baseline and ``vigil run`` alternately, each on a fresh store, ``runs`` times; keep the fastest."""
    vigil_command = Path(sys.executable).parent / "vigil"
    if not vigil_command.exists():
        raise SystemExit(f"{vigil_command} not found: run with the project's venv (.venv/bin/python)")
    best: dict[str, ChildRun] = {}
    for attempt in range(runs):
        cases = {
            "baseline": [
                sys.executable,
                str(BENCH_DIR / "baseline_ingest.py"),
                *("--input", str(work.events_file)),
                *("--store", str(work.directory / f"baseline-store-{attempt}")),
                *("--batch-size", str(BATCH_SIZE)),
            ],
            "vigil": [str(vigil_command), "run", "--input", str(work.events_file)],
        }
        for name, argv in cases.items():
            env = child_env(work, f"vigil-data-{name}-{attempt}")
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
                len(work.values),
                result.wall,
                peak_rss_mib=result.peak_rss_mib,
                cpu_seconds=result.cpu,
                note="subprocess",
            )
        )
        rows.append(
            Row(
                f"{labels[name]} (its own loop rate)",
                result.messages,
                result.loop_seconds,
                note="summary line",
            )
        )
    return rows, best


# --- in-process stages -----------------------------------------------------------------


class Stages:
    """Times each stage ``repeats`` times; a row keeps the fastest wall time and least CPU time.

    ``prepare`` runs untimed before each repetition and returns the timed callable, so
    per-run state (a fresh pipeline, a fresh cache) is never part of the measurement.
    ``frozen`` moves everything alive (imports, prebuilt inputs) out of the collector's
    reach for the timed run, as ``gc.freeze()`` after start-up would in a driver;
    ``threshold`` sets ``gc.set_threshold`` for the timed run.
    """

    def __init__(self, repeats: int) -> None:
        self.repeats = repeats
        self.rows: list[Row] = []

    def add(
        self,
        name: str,
        items: int,
        prepare: Callable[[], Callable[[], object]],
        unit: str = "event",
        note: str = "",
        frozen: bool = False,
        threshold: tuple[int, int, int] | None = None,
    ) -> Row:
        walls, cpus = [], []
        default_threshold = gc.get_threshold()
        for _ in range(self.repeats):
            body = prepare()
            gc.collect()
            if frozen:
                gc.freeze()
            if threshold is not None:
                gc.set_threshold(*threshold)
            try:
                cpu, wall = time.process_time(), time.perf_counter()
                body()
                walls.append(time.perf_counter() - wall)
                cpus.append(time.process_time() - cpu)
            finally:
                gc.unfreeze()
                gc.set_threshold(*default_threshold)
        row = Row(name, items, min(walls), unit, cpu_seconds=min(cpus), note=note, all_seconds=walls)
        self.rows.append(row)
        return row


@dataclass
class Accepted:
    """One event past decode and identity, with where it came from (for the detectors)."""

    event: Event
    verdict: Verdict
    offset: int


def stage_rows(work: Workload, repeats: int) -> tuple[list[Row], str]:
    """Per-stage costs on the same messages, no storage; returns rows and the cache_size=0 finding.

    Every stage object comes from ``vigil.runtime.build_pipeline`` with the same settings
    ``vigil run`` uses, so the stages measured are the ones it runs.
    """
    stages = Stages(repeats)
    values, n = work.values, len(work.values)
    max_bytes = build_pipeline(work.settings).max_bytes

    def parse_only() -> None:
        for value in values:
            try:
                orjson.loads(value)
            except orjson.JSONDecodeError:
                continue

    def decode_only() -> None:
        for value in values:
            decode(value, max_bytes)

    def decode_verify() -> Callable[[], object]:
        identity = build_pipeline(work.settings).identity  # fresh replay memory

        def body() -> None:
            for offset, value in enumerate(values, start=1):
                decoded = decode(value, max_bytes)
                if isinstance(decoded, Decoded):
                    identity.verify(decoded.event, decoded.canonical, (TOPIC, 0, offset), None)

        return body

    stages.add("orjson.loads only (the baseline's parse)", n, lambda: parse_only)
    stages.add("decode (schemas.decode.decode)", n, lambda: decode_only)
    stages.add("decode + verify (HMAC, replay)", n, decode_verify)

    outcome: dict[str, int] = {}

    def whole_pipeline() -> Callable[[], object]:
        pipeline = build_pipeline(work.settings)

        def body() -> None:
            events = rejected = 0
            for batch in work.batches():
                result = pipeline.process(batch)
                events += len(result.events)
                rejected += len(result.rejected)
            outcome.update(events=events, rejected=rejected)

        return body

    stages.add("Pipeline.process (all stages, no store)", n, whole_pipeline)
    stages.rows[-1].note = f"{outcome['events']:,} events, {outcome['rejected']:,} rejected"
    stages.add("Pipeline.process, gc.freeze() first", n, whole_pipeline, note="GC experiment", frozen=True)
    stages.add(
        f"Pipeline.process, gc.set_threshold{GC_THRESHOLD}",
        n,
        whole_pipeline,
        note="GC experiment",
        threshold=GC_THRESHOLD,
    )

    # Inputs for the remaining stages, built once and frozen while each is timed, so
    # these rows measure each stage's own work (the rows above include GC).
    pipeline = build_pipeline(work.settings)
    engine = pipeline.engine
    bundle, inventory = engine.bundle, engine.inventory
    accepted = _accepted_batches(work, pipeline)
    interned: dict[AuthzRequest, AuthzRequest] = {}
    requests = [
        [interned.setdefault(r, r) for r in (request_for(a.event, a.verdict, inventory) for a in batch)]
        for batch in accepted
    ]
    n_requests = sum(map(len, requests))
    verified = [a for batch in accepted for a in batch if a.verdict.verified]

    def build_requests() -> None:
        for batch in accepted:
            for item in batch:
                request_for(item.event, item.verdict, inventory)

    stages.add(
        "request_for (Cedar request + facts)", n_requests, lambda: build_requests, "request", frozen=True
    )

    def policy_cached() -> Callable[[], object]:
        engine = PolicyEngine(bundle, inventory)
        return lambda: [engine.decide_many(batch) for batch in requests]

    def policy_fresh_engine_per_batch() -> None:
        for batch in requests:
            PolicyEngine(bundle, inventory).decide_many(batch)

    sample = [r for batch in requests for r in batch][:UNCACHED_SAMPLE]

    def policy_per_request() -> None:
        for request in sample:
            PolicyEngine(bundle, inventory).decide_many([request])

    stages.add(
        "policy: decide_many, cache on (as shipped)",
        n_requests,
        policy_cached,
        "request",
        note=f"{len(interned)} distinct requests in the stream",
        frozen=True,
    )
    stages.add(
        "policy: fresh PolicyEngine per batch",
        n_requests,
        lambda: policy_fresh_engine_per_batch,
        "request",
        note="no cache across batches; a batch is still deduped",
        frozen=True,
    )
    stages.add(
        "policy: fresh PolicyEngine per request",
        len(sample),
        lambda: policy_per_request,
        "request",
        note=f"first {len(sample)}: no cache, no dedup (incl. engine set-up)",
        frozen=True,
    )
    cache_zero = probe_cache_size_zero(bundle, inventory, requests)

    def detect() -> Callable[[], object]:
        stage = build_pipeline(work.settings).detect

        def body() -> None:
            for item in verified:
                stage.observe(item.event, topic=TOPIC, partition=0, offset=item.offset)

        return body

    stages.add("detect: DetectStage.observe", len(verified), detect, note="verified events", frozen=True)
    return stages.rows, cache_zero


def _accepted_batches(work: Workload, pipeline: Pipeline) -> list[list[Accepted]]:
    """Decoded and verified events per batch, as the policy and detect stages receive them."""
    out = []
    for batch in work.batches():
        items = []
        for message in batch:
            decoded = decode(message.value, pipeline.max_bytes)
            if isinstance(decoded, Decoded):
                position = (message.topic, message.partition, message.offset)
                verdict = pipeline.identity.verify(decoded.event, decoded.canonical, position, None)
                items.append(Accepted(decoded.event, verdict, message.offset))
        out.append(items)
    return out


def probe_cache_size_zero(bundle: Any, inventory: Any, requests: list[list[AuthzRequest]]) -> str:
    """Does ``PolicyEngine(..., cache_size=0)`` disable caching? Report what it actually does."""
    engine = PolicyEngine(bundle, inventory, cache_size=0)
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
        "cpu_model": cpu_model,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average_at_start": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "versions": versions,
        "code": code_version(),
    }


def code_version() -> str:
    """Which Vigil was measured: the commit, when it is a git checkout."""
    root = Path(vigil.__file__).resolve().parent.parent

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, check=True
        ).stdout.strip()

    try:
        commit = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return "not a git checkout"
    return f"commit {commit}" + (" with uncommitted changes" if dirty else "")


def render(rows: list[Row]) -> str:
    header = ("measurement", "items", "µs/item", "items/s", "CPU s", "CPU µs/item", "peak RSS MiB", "note")
    lines = [header]
    for row in rows:
        lines.append(
            (
                row.name,
                f"{row.items:,} {row.unit}s",
                f"{row.us_per_item:,.1f}",
                f"{row.per_second:,.0f}",
                f"{row.cpu_seconds:,.2f}" if row.cpu_seconds is not None else "",
                f"{row.cpu_us_per_item:,.1f}" if row.cpu_us_per_item is not None else "",
                f"{row.peak_rss_mib:,.0f}" if row.peak_rss_mib is not None else "",
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
    parser.add_argument("--repeat", type=int, default=2, help="in-process runs per stage; fastest shown")
    parser.add_argument("--runs", type=int, default=1, help="subprocess runs per case; fastest shown")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (events, stores, logs)")
    args = parser.parse_args()
    for name in [k for k in os.environ if k.startswith("VIGIL_")]:
        del os.environ[name]

    info = machine_info()
    versions = ", ".join(f"{k} {v}" for k, v in info["versions"].items())
    print(f"Vigil pipeline benchmark: {args.events:,} demo events, seed {args.seed}, batch {BATCH_SIZE}")
    print(f"Code: {info['code']}")
    print(f"Machine: {info['cpus']} CPUs ({info['cpu_model'] or info['platform']}), Python {info['python']}")
    print(f"Load average at start: {', '.join(f'{x:.2f}' for x in info['load_average_at_start'] or ())}")
    print(f"Packages: {versions}\n", flush=True)

    temp = tempfile.TemporaryDirectory(prefix="vigil-bench-")
    directory = Path(temp.name)
    try:
        # An empty config file: a vigil.toml in the working directory must not apply.
        config = directory / "vigil.toml"
        config.write_text("# defaults only\n")
        os.environ["VIGIL_CONFIG"] = str(config)
        print("  generating events...", file=sys.stderr, flush=True)
        work = generate(directory, args.events, args.seed)
        size_mib = work.events_file.stat().st_size / 2**20
        print(f"Input: {len(work.values):,} messages ({size_mib:.1f} MiB)\n")
        child_rows, children = subprocess_rows(work, args.runs)
        print("  in-process stages...", file=sys.stderr, flush=True)
        rows, cache_zero = stage_rows(work, args.repeat)
    finally:
        if args.keep:
            print(f"kept {directory}", file=sys.stderr)
        else:
            temp.cleanup()

    vigil_run, baseline = children["vigil"], children["baseline"]
    process = next(r for r in rows if r.name.startswith("Pipeline.process ("))
    storage = Row(
        "derived: vigil run loop - Pipeline.process",
        vigil_run.messages,
        max(vigil_run.loop_seconds - process.us_per_item * vigil_run.messages / 1e6, 0.0),
        note="≈ storage, audit ledger, driver",
    )
    table = [*child_rows, *rows, storage]
    print(render(table))
    print()
    print(f"vigil run:  {vigil_run.summary}")
    print(f"baseline:   {baseline.summary}")
    print(
        "vigil run / baseline: "
        f"{vigil_run.loop_seconds / baseline.loop_seconds:.1f}x the loop time, "
        f"{vigil_run.wall / baseline.wall:.1f}x wall, {vigil_run.cpu / baseline.cpu:.1f}x CPU time, "
        f"{vigil_run.peak_rss_mib / baseline.peak_rss_mib:.1f}x peak RSS"
    )
    print(f"Policy cache probe: {cache_zero}")
    print(
        f"In-process rows: fastest of {args.repeat} runs (CPU: least of {args.repeat}); "
        f"subprocess rows: fastest of {args.runs}."
    )
    print(f"Load average at end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")

    if args.json:
        document = {
            "machine": info,
            "config": {
                "events": args.events,
                "messages": len(work.values),
                "seed": args.seed,
                "batch_size": BATCH_SIZE,
                "repeat": args.repeat,
                "runs": args.runs,
            },
            "rows": [row.as_json() for row in table],
            "children": {name: asdict(child) for name, child in children.items()},
            "policy_cache_size_0": cache_zero,
        }
        args.json.write_text(json.dumps(document, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
