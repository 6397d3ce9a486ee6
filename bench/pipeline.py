"""Throughput and memory of ``vigil run`` next to a naive "just store it" consumer.

Why this exists: the pipeline promises governance (schema validation, signature and
replay checks, Cedar decisions, detectors, an audit ledger, alerting) on every event. This benchmark answers
what that costs, in one run on one machine so the numbers are comparable:

1. ``vigil run --input FILE`` and ``bench/baseline_ingest.py`` (orjson.loads per line,
   the raw line inserted into chDB in batches of 2000 through the same clickhouse-connect
   client) as subprocesses on fresh stores, alternating, ``--runs`` times each (default
   3): events/s from each command's own loop timer and from the wall clock around it,
   CPU time and peak RSS, as min/median/max, and the ratio of each pair of runs. With
   a compiled install (``setup.py``), ``vigil run`` on a copy of the Python source runs
   in the same rotation: what compiling the detectors buys.
2. In-process stage costs over the same events in batches of 2000: decode, identity,
   ``Pipeline.process`` (garbage collector as the drivers tune it, and as Python ships
   it), policy requests and decisions, detectors, the audit ledger and the store write
   (Arrow columns as shipped, next to clickhouse-connect's row insert).
3. Footprint: bytes per cached policy decision and per replay-memory entry.
4. ``--memory``: peak RSS of ``vigil run`` at two stream lengths (default 200k and 1M
   events), which should agree within 10% once the bounded state is full.

Events come from ``vigil.fleet.FleetTraffic``: 200 models, 5,000 principals and 2,000
datasets, deterministic for the seed (only timestamps and the random keys differ).
Each subprocess runs under a tiny wrapper interpreter that reports
``getrusage(RUSAGE_CHILDREN)``, so peak RSS is that process's alone. ``VIGIL_*``
variables are ignored: the benchmark measures the default settings.

Usage::

    .venv/bin/python bench/pipeline.py                      # 100k events, 3 runs each
    .venv/bin/python bench/pipeline.py --events 5000        # smoke run
    .venv/bin/python bench/pipeline.py --memory             # RSS at 200k and 1M events
    .venv/bin/python bench/pipeline.py --json results.json  # also write the results
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import metadata
from pathlib import Path
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

# Run as a script, bench/ is sys.path[0], and a module there (such as bench/audit_overhead.py)
# would shadow a product package of the same name: import the product, not the bench.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)

import vigil
from audit.keys import Signer
from audit.ledger import Ledger, NoHistory
from identity.freshness import ReplayGuard
from identity.verify import Verdict
from policies.engine import PolicyEngine
from policies.facts import Facts
from policies.requests import AuthzRequest, request_for
from schemas.decode import Decoded, decode
from schemas.events import Event
from sinks.clickhouse import TABLES, ClickHouseStore, connect, migrate
from streams.local import batches, messages_from_lines
from vigil.fleet import Fleet, FleetTraffic, write_inventory, write_keys
from vigil.pipeline import BatchResult, Pipeline, RawMessage
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
    *("cedarpy", "orjson", "pyarrow", "numpy", "river"),
)
STORE_RUNS = 3
SHIPPED_GC = (50_000, 20, 100)
"""``vigil.runtime.settle_memory``: freeze what start-up built, collect the young generation less often."""
MEMORY_WINDOW_HOURS = 1.0
"""Replay window in ``--memory`` runs: 72,000 ids at the fleet's 50 ms spacing, full well
before 200k events, so the two sizes compare bounded state, not a filling window."""
MEMORY_DETECTOR_LIMITS = {"max_pending_mib": 8, "max_access_mib": 4}
"""Detector budgets in ``--memory`` runs, for the same reason. Fleet traffic leaves about
70 bytes of predictions awaiting feedback and 35 bytes of access memory per event, so the
shipped budgets (64 MiB each per partition) fill only after about 1M and 2M events: the
run would measure a budget filling up. These are full after about 120k events."""
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
    """One line of the stage table; rates are per item, ``unit`` says what an item is."""

    name: str
    items: int
    seconds: float
    unit: str = "event"
    cpu_seconds: float | None = None
    note: str = ""
    all_seconds: list[float] = field(default_factory=list)

    @property
    def us_per_item(self) -> float:
        return self.seconds / self.items * 1e6 if self.items else float("nan")

    @property
    def cpu_us_per_item(self) -> float | None:
        """CPU time per item: steadier than wall time when other processes share the CPUs."""
        return self.cpu_seconds / self.items * 1e6 if self.cpu_seconds is not None and self.items else None

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "us_per_item": self.us_per_item, "cpu_us_per_item": self.cpu_us_per_item}


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


def write_events(path: Path, secrets_by_source: dict[str, bytes], events: int, seed: int) -> None:
    with path.open("wb") as handle:
        for line in FleetTraffic(secrets_by_source, events=events, seed=seed).lines():
            handle.write(line + b"\n")


def generate(directory: Path, events: int, seed: int) -> Workload:
    """Fleet keys, ``events`` signed events as JSON lines, and their bytes in memory."""
    keys_file = directory / "keys.yaml"
    events_file = directory / "events.jsonl"
    write_events(events_file, write_keys(keys_file), events, seed)
    with events_file.open("rb") as handle:
        values = [m.value for m in messages_from_lines(handle, TOPIC)]
    settings = Settings(data_dir=data_dir(directory, "in-process"), keys_file=keys_file)
    return Workload(directory, events_file, keys_file, settings, values)


def data_dir(directory: Path, name: str) -> Path:
    """A fresh ``VIGIL_DATA_DIR`` holding the fleet's inventory."""
    path = directory / name
    write_inventory(path / "inventory.yaml", Fleet())
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

    @property
    def loop_rate(self) -> float:
        return self.messages / self.loop_seconds if self.loop_seconds else float("nan")


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


def child_env(directory: Path, keys_file: Path, name: str, **extra: str) -> dict[str, str]:
    """This environment (already without VIGIL_*), pointed at a fresh store and the fleet keys."""
    return {
        **os.environ,
        "VIGIL_DATA_DIR": str(data_dir(directory, name)),
        "VIGIL_KEYS_FILE": str(keys_file),
        **extra,
    }


def vigil_command() -> Path:
    command = Path(sys.executable).parent / "vigil"
    if not command.exists():
        raise SystemExit(f"{command} not found: run with the project's venv (.venv/bin/python)")
    return command


def run_vigil(directory: Path, keys_file: Path, events_file: Path, name: str, **extra: str) -> ChildRun:
    argv = [str(vigil_command()), "run", "--input", str(events_file)]
    return run_child(name, argv, child_env(directory, keys_file, name, **extra), directory)


def run_baseline(directory: Path, events_file: Path, name: str) -> ChildRun:
    argv = [
        sys.executable,
        str(BENCH_DIR / "baseline_ingest.py"),
        *("--input", str(events_file)),
        *("--store", str(directory / f"{name}-store")),
        *("--batch-size", str(BATCH_SIZE)),
    ]
    return run_child(name, argv, {**os.environ}, directory)


def python_source(directory: Path) -> Path | None:
    """A copy of Vigil's packages without their compiled modules, or ``None`` when this
    install is not compiled (``setup.py``). Put first on ``PYTHONPATH``, it runs the
    Python source of the same code: the baseline of what compiling buys."""
    import detectors.base

    if not str(detectors.base.__file__).endswith(".so"):
        return None
    copy = directory / "python-source"
    for package in (p for p in BENCH_DIR.parent.iterdir() if (p / "__init__.py").exists()):
        shutil.copytree(package, copy / package.name, ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    return copy


def side_by_side(work: Workload, runs: int) -> dict[str, list[ChildRun]]:
    """Baseline and ``vigil run`` alternately, each on a fresh store, ``runs`` times; with a
    compiled install, ``vigil run`` on the Python source too."""
    children: dict[str, list[ChildRun]] = {"vigil": [], "baseline": [], "python": []}
    source = python_source(work.directory)
    for attempt in range(runs):
        print(f"  run {attempt + 1}/{runs}: baseline, then vigil run...", file=sys.stderr, flush=True)
        children["baseline"].append(run_baseline(work.directory, work.events_file, f"baseline-{attempt}"))
        children["vigil"].append(
            run_vigil(work.directory, work.keys_file, work.events_file, f"vigil-{attempt}")
        )
        if source is not None:
            children["python"].append(
                run_vigil(
                    work.directory,
                    work.keys_file,
                    work.events_file,
                    f"vigil-py-{attempt}",
                    PYTHONPATH=str(source),
                )
            )
    return children


def spread(values: Sequence[float], fmt: str = "{:,.0f}") -> str:
    """min / median / max."""
    return " / ".join(fmt.format(v) for v in (min(values), statistics.median(values), max(values)))


def render_children(children: dict[str, list[ChildRun]]) -> str:
    vigil_runs, baseline_runs = children["vigil"], children["baseline"]
    lines = [
        ("", "vigil run", "baseline (just store it)", "vigil / baseline"),
        (
            "events/s, own loop",
            spread([r.loop_rate for r in vigil_runs]),
            spread([r.loop_rate for r in baseline_runs]),
            spread(
                [v.loop_rate / b.loop_rate for v, b in zip(vigil_runs, baseline_runs, strict=True)], "{:.1%}"
            ),
        ),
        (
            "events/s, wall (start-up incl.)",
            spread([r.messages / r.wall for r in vigil_runs]),
            spread([r.messages / r.wall for r in baseline_runs]),
            spread([b.wall / v.wall for v, b in zip(vigil_runs, baseline_runs, strict=True)], "{:.1%}"),
        ),
        (
            "CPU µs/event (start-up incl.)",
            spread([r.cpu / r.messages * 1e6 for r in vigil_runs], "{:,.1f}"),
            spread([r.cpu / r.messages * 1e6 for r in baseline_runs], "{:,.1f}"),
            "",
        ),
        (
            "peak RSS MiB",
            spread([r.peak_rss_mib for r in vigil_runs]),
            spread([r.peak_rss_mib for r in baseline_runs]),
            "",
        ),
    ]
    python_runs = children["python"]
    if python_runs:
        compiled_vs_python = [v.loop_rate / p.loop_rate for v, p in zip(vigil_runs, python_runs, strict=True)]
        extra = [
            ("vigil run, Python source", "compiled / Python"),
            (spread([r.loop_rate for r in python_runs]), spread(compiled_vs_python, "{:.2f}x")),
            (spread([r.messages / r.wall for r in python_runs]), ""),
            (spread([r.cpu / r.messages * 1e6 for r in python_runs], "{:,.1f}"), ""),
            (spread([r.peak_rss_mib for r in python_runs]), ""),
        ]
        lines = [(*line, *more) for line, more in zip(lines, extra, strict=True)]
    return table(lines)


# --- in-process stages -----------------------------------------------------------------


class Stages:
    """Times each stage ``repeats`` times; a row keeps the fastest wall time and least CPU time.

    ``prepare`` runs untimed before each repetition and returns the timed callable, so
    per-run state (a fresh pipeline, a fresh cache) is never part of the measurement.
    ``frozen`` moves everything alive (imports, prebuilt inputs) out of the collector's
    reach for the timed run and ``threshold`` sets ``gc.set_threshold``, as
    ``vigil.runtime.settle_memory`` does in the drivers after start-up.
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
        frozen: bool = True,
        threshold: tuple[int, int, int] | None = SHIPPED_GC,
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


def stage_rows(work: Workload, repeats: int) -> list[Row]:
    """Per-stage costs on the same messages; every stage built as ``vigil run`` builds it."""
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
            for batch in work.batches():
                items = []
                for message in batch:
                    decoded = decode(message.value, max_bytes)
                    if isinstance(decoded, Decoded):
                        position = (message.topic, message.partition, message.offset)
                        items.append((decoded.event, decoded.canonical, position, None))
                identity.verify_many(items)

        return body

    stages.add("orjson.loads only (the baseline's parse)", n, lambda: parse_only)
    stages.add("decode (schemas.decode.decode)", n, lambda: decode_only)
    stages.add("decode + verify (HMAC, replay memory)", n, decode_verify)

    outcome: dict[str, int] = {}
    results: list[BatchResult] = []

    def whole_pipeline() -> Callable[[], object]:
        pipeline = build_pipeline(work.settings)
        results.clear()

        def body() -> None:
            events = rejected = 0
            for batch in work.batches():
                result = pipeline.process(batch)
                events += len(result.events)
                rejected += len(result.rejected)
                results.append(result)
            outcome.update(events=events, rejected=rejected)

        return body

    stages.add("Pipeline.process (all stages, no store)", n, whole_pipeline)
    stages.rows[-1].note = f"{outcome['events']:,} events, {outcome['rejected']:,} rejected; GC as shipped"
    stages.add(
        "Pipeline.process, Python's default GC thresholds",
        n,
        whole_pipeline,
        note="no freeze, default thresholds (the pause during a batch applies to both)",
        frozen=False,
        threshold=None,
    )

    # Inputs for the remaining stages, built once and frozen while each is timed.
    pipeline = build_pipeline(work.settings)
    engine = pipeline.engine
    bundle, inventory = engine.bundle, engine.inventory
    accepted = _accepted_batches(work, pipeline)
    requests = [[request_for(a.event, a.verdict, inventory) for a in batch] for batch in accepted]
    n_requests = sum(map(len, requests))
    verified = [a for batch in accepted for a in batch if a.verdict.verified]

    def build_requests() -> Callable[[], object]:
        inventory.request_memo.clear()

        def body() -> None:
            for batch in accepted:
                for item in batch:
                    request_for(item.event, item.verdict, inventory)

        return body

    stages.add("request_for (Cedar request + facts)", n_requests, build_requests, "request")

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

    probe = PolicyEngine(bundle, inventory)
    for batch in requests:
        probe.decide_many(batch)
    distinct = len({r for batch in requests for r in batch})
    stages.add(
        "policy: decide_many, cache on (as shipped)",
        n_requests,
        policy_cached,
        "request",
        note=f"{distinct:,} distinct requests, {probe.evaluated:,} Cedar evaluations",
    )
    stages.add(
        "policy: fresh PolicyEngine per batch",
        n_requests,
        lambda: policy_fresh_engine_per_batch,
        "request",
        note="no cache across batches; a batch is still deduped",
    )
    stages.add(
        "policy: fresh PolicyEngine per request",
        len(sample),
        lambda: policy_per_request,
        "request",
        note=f"first {len(sample)}: no cache, no dedup (incl. engine set-up)",
    )

    def detect() -> Callable[[], object]:
        stage = build_pipeline(work.settings).detect

        def body() -> None:
            for item in verified:
                stage.observe(item.event, topic=TOPIC, partition=0, offset=item.offset)

        return body

    stages.add("detect: DetectStage.observe", len(verified), detect, note="verified events")

    tables = [result.tables() for result in results]

    def ledger() -> Callable[[], object]:
        ledger = Ledger(NoHistory(), Signer(Ed25519PrivateKey.generate()))

        def body() -> None:
            for batch_tables in tables:
                ledger.commit(ledger.prepare(batch_tables))

        return body

    stages.add("audit: Ledger.prepare (records, hashes, chain)", n, ledger)
    client = connect("chdb://memory")
    migrate(client)
    store = ClickHouseStore(client)

    def arrow_write() -> None:
        for batch_tables in tables:
            store.write(batch_tables)

    def row_insert() -> None:
        for batch_tables in tables:
            for name, rows in batch_tables.items():
                if rows:
                    client.insert(name, rows, column_names=list(TABLES[name]._fields))

    # The two ways of writing alternate, fastest of STORE_RUNS each: the store's own
    # state (parts, merges) changes under them, so back-to-back runs would favour one.
    writes = Stages(1)
    for _ in range(STORE_RUNS):
        writes.add("store: Arrow columns (as shipped)", n, lambda: arrow_write)
        writes.add("store: clickhouse-connect row insert", n, lambda: row_insert)
    client.close()
    for name, note in (
        ("store: Arrow columns (as shipped)", "tables of Pipeline.process into chdb://memory"),
        ("store: clickhouse-connect row insert", "the same rows, as before"),
    ):
        runs = [row for row in writes.rows if row.name == name]
        fastest = min(runs, key=lambda row: row.seconds)
        fastest.cpu_seconds = min(row.cpu_seconds or 0.0 for row in runs)
        fastest.note = f"{note}; fastest of {len(runs)}, alternating"
        stages.rows.append(fastest)
    return stages.rows


def _accepted_batches(work: Workload, pipeline: Pipeline) -> list[list[Accepted]]:
    """Decoded and verified events per batch, as the policy and detect stages receive them."""
    out = []
    for batch in work.batches():
        decoded = [(m, d) for m in batch if isinstance(d := decode(m.value, pipeline.max_bytes), Decoded)]
        verdicts = pipeline.identity.verify_many(
            [(d.event, d.canonical, (m.topic, m.partition, m.offset), None) for m, d in decoded]
        )
        out.append([Accepted(d.event, v, m.offset) for (m, d), v in zip(decoded, verdicts, strict=True)])
    return out


# --- footprint -------------------------------------------------------------------------


def footprint(work: Workload) -> list[tuple[str, str]]:
    """Bytes per cached decision and per replay-memory entry, measured with tracemalloc."""
    engine = build_pipeline(work.settings).engine
    requests = [
        AuthzRequest("User", f"user-{n}", ("analyst",), "read", "Dataset", f"ds-{n}", facts)
        for n, facts in enumerate(_distinct_facts(20_000))
    ]
    cache = PolicyEngine(engine.bundle, engine.inventory)
    decisions = cache.decide_many(requests[:1])
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for request in requests:
        cache._cache.put(cache._key(request), decisions[0])
    per_decision = (tracemalloc.get_traced_memory()[0] - before) / len(requests)
    tracemalloc.stop()

    per_id, traced = _replay_bytes_per_id()
    full_window = ReplayGuard(window=timedelta(seconds=300), clock=lambda: datetime(2030, 1, 1, tzinfo=UTC))
    _remember(full_window, 20_000 * 330)  # 330 s at 20,000 events/s: the window full and moving
    return [
        (
            "policy decision cache",
            f"{per_decision:,.0f} bytes per cached decision (tracemalloc, 20,000 entries)",
        ),
        (
            "replay memory",
            f"{per_id:,.1f} bytes per id (tracemalloc, {traced:,} ids, an open dict of new ids "
            f"included); 20,000 events/s x 300 s window: {len(full_window):,} ids in "
            f"{full_window.nbytes() / 1e6:,.1f} MB ({full_window.nbytes() / len(full_window):,.1f} "
            "bytes per id, the guard's own count)",
        ),
    ]


def _replay_bytes_per_id() -> tuple[float, int]:
    guard = ReplayGuard(window=timedelta(seconds=300), clock=lambda: datetime(2030, 1, 1, tzinfo=UTC))
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    _remember(guard, 400_000)
    per_id = (tracemalloc.get_traced_memory()[0] - before) / len(guard)
    tracemalloc.stop()
    return per_id, len(guard)


def _remember(guard: ReplayGuard, ids: int) -> None:
    """Feed ``ids`` distinct ids, one every 50 µs of event time, in the pipeline's batches."""
    start = datetime(2029, 12, 31, tzinfo=UTC)
    for first in range(0, ids, BATCH_SIZE):
        guard.check_many(
            [
                (f"fleet-7-{k:09d}", (TOPIC, 0, k), start + timedelta(microseconds=50 * k))
                for k in range(first, first + BATCH_SIZE)
            ]
        )


def _distinct_facts(count: int) -> Iterator[Facts]:
    """Distinct fact tuples, so every request is its own cache entry."""
    for n in range(count):
        yield (("verified", True), ("model_status", f"status-{n}"))


# --- memory mode -----------------------------------------------------------------------


PIPELINE_ONLY = """
import sys, time
from streams.local import batches, messages_from_lines
from vigil.runtime import build_pipeline, settle_memory
from vigil.settings import Settings
pipeline = build_pipeline(Settings())
settle_memory()
started, n = time.perf_counter(), 0
with open(sys.argv[1], "rb") as handle:
    for batch in batches(messages_from_lines(handle, "ai.inference"), 2000):
        n += len(pipeline.process(batch).events)
print(f"{n} messages in {time.perf_counter() - started:.2f}s")
"""
"""``Pipeline.process`` over a file and nothing else (no store, no ledger, no alerting): the
memory of the pipeline's own state, apart from the embedded store's."""


def memory_mode(
    directory: Path, sizes: Sequence[int], seed: int, runs: int = 1, control: bool = True
) -> list[tuple[str, str]]:
    """Peak RSS of ``vigil run`` (``runs`` times), and of the pipeline alone, at each stream length.

    The pipeline alone is the control: its state is the same on every run, so it runs
    once per size; ``control=False`` leaves it out when only ``vigil run`` is compared.
    """
    keys_file = directory / "keys.yaml"
    secrets_by_source = write_keys(keys_file)
    limits_file = directory / "detector-limits.yaml"
    limits_file.write_text(json.dumps({"limits": MEMORY_DETECTOR_LIMITS}))  # JSON is YAML
    bounded = {
        "VIGIL_IDENTITY_REPLAY_WINDOW_HOURS": str(MEMORY_WINDOW_HOURS),
        "VIGIL_DETECTORS_CONFIG": str(limits_file),
    }
    lines = []
    peaks: dict[str, list[list[float]]] = (
        {"vigil run": [], "pipeline alone": []} if control else {"vigil run": []}
    )
    for size in sizes:
        events_file = directory / f"events-{size}.jsonl"
        print(f"  memory: generating {size:,} events...", file=sys.stderr, flush=True)
        write_events(events_file, secrets_by_source, size, seed)
        found: dict[str, list[ChildRun]] = {name: [] for name in peaks}
        for attempt in range(runs):
            print(
                f"  memory: vigil run {attempt + 1}/{runs} on {size:,} events...", file=sys.stderr, flush=True
            )
            name = f"memory-{size}-{attempt}"
            found["vigil run"].append(run_vigil(directory, keys_file, events_file, name, **bounded))
        if control:
            print(f"  memory: the pipeline alone on {size:,} events...", file=sys.stderr, flush=True)
            found["pipeline alone"].append(
                run_child(
                    f"memory-pipeline-{size}",
                    [sys.executable, "-c", PIPELINE_ONLY, str(events_file)],
                    child_env(directory, keys_file, f"memory-pipeline-{size}", **bounded),
                    directory,
                )
            )
        events_file.unlink()
        for name, children in found.items():
            peaks[name].append([child.peak_rss_mib for child in children])
            found_peaks = peaks[name][-1]
            rss = (
                f"min / median / max {spread(found_peaks)}"
                if len(found_peaks) > 1
                else f"{found_peaks[0]:,.0f}"
            )
            lines.append((f"{name}, {size:,} events", f"peak RSS {rss} MiB; {children[-1].summary}"))
    if len(sizes) > 1:
        for name, by_size in peaks.items():
            first, last = by_size[0], by_size[-1]
            change = statistics.median(last) / statistics.median(first) - 1
            extremes = f" (extremes {min(last) / max(first) - 1:+.1%} to {max(last) / min(first) - 1:+.1%})"
            lines.append(
                (
                    f"peak RSS change, {name}",
                    f"{change:+.1%} from {sizes[0]:,} to {sizes[-1]:,} events"
                    f"{extremes if len(first) > 1 else ''} (target within ±10%)",
                )
            )
    return lines


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


def table(lines: Sequence[Sequence[str]], numeric_from: int = 1) -> str:
    """A Markdown table; columns from ``numeric_from`` on are right-aligned (except the last)."""
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    out = []
    for number, line in enumerate(lines):
        cells = [
            c.rjust(w) if numeric_from <= i < len(line) - 1 else c.ljust(w)
            for i, (c, w) in enumerate(zip(line, widths, strict=True))
        ]
        out.append("| " + " | ".join(cells) + " |")
        if number == 0:
            out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(out)


def render_stages(rows: list[Row]) -> str:
    lines = [("stage", "items", "µs/item", "CPU µs/item", "note")]
    for row in rows:
        cpu = row.cpu_us_per_item
        lines.append(
            (
                row.name,
                f"{row.items:,} {row.unit}s",
                f"{row.us_per_item:,.1f}",
                f"{cpu:,.1f}" if cpu is not None else "",
                row.note,
            )
        )
    return table(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000, help="fleet events (default 100000)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--runs", type=int, default=3, help="subprocess runs per case, alternating (>= 3)")
    parser.add_argument("--repeat", type=int, default=1, help="in-process runs per stage; fastest shown")
    parser.add_argument("--memory", action="store_true", help="only the peak RSS at --memory-sizes")
    parser.add_argument(
        "--memory-sizes",
        default="200000,1000000",
        help="stream lengths for --memory (default 200000,1000000)",
    )
    parser.add_argument(
        "--memory-runs", type=int, default=1, help="vigil run repeated per size in --memory (default 1)"
    )
    parser.add_argument(
        "--memory-without-control",
        action="store_true",
        help="leave out the pipeline alone in --memory (halves its time)",
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (events, stores, logs)")
    args = parser.parse_args()
    for name in [k for k in os.environ if k.startswith("VIGIL_")]:
        del os.environ[name]

    info = machine_info()
    versions = ", ".join(f"{k} {v}" for k, v in info["versions"].items())
    fleet = Fleet()
    what = f"memory mode, {args.memory_sizes} events" if args.memory else f"{args.events:,} events"
    print(f"Vigil pipeline benchmark: {what}, seed {args.seed}, batch {BATCH_SIZE}")
    print(
        f"Fleet: {fleet.models} models, {fleet.principals:,} principals, {fleet.datasets:,} datasets, "
        f"{fleet.features_per_model} numeric features per model"
    )
    print(f"Code: {info['code']}")
    print(f"Machine: {info['cpus']} CPUs ({info['cpu_model'] or info['platform']}), Python {info['python']}")
    print(f"Load average at start: {', '.join(f'{x:.2f}' for x in info['load_average_at_start'] or ())}")
    print(f"Packages: {versions}\n", flush=True)

    temp = tempfile.TemporaryDirectory(prefix="vigil-bench-")
    directory = Path(temp.name)
    document: dict[str, Any] = {"machine": info, "config": vars(args) | {"json": str(args.json)}}
    try:
        # An empty config file: a vigil.toml in the working directory must not apply.
        config = directory / "vigil.toml"
        config.write_text("# defaults only\n")
        os.environ["VIGIL_CONFIG"] = str(config)
        if args.memory:
            sizes = [int(s) for s in args.memory_sizes.split(",")]
            lines = memory_mode(
                directory, sizes, args.seed, args.memory_runs, control=not args.memory_without_control
            )
            full_after = MEMORY_WINDOW_HOURS * 3600 / FleetTraffic.step.total_seconds()
            print(f"Replay window {MEMORY_WINDOW_HOURS} h: full after {full_after:,.0f} events")
            budgets = ", ".join(f"{k} {v}" for k, v in MEMORY_DETECTOR_LIMITS.items())
            print(f"Detector budgets per partition: {budgets} (full after about 120,000 events)")
            print(table([("run", "result"), *lines], numeric_from=99))
            document["memory"] = dict(lines)
        else:
            print("  generating events...", file=sys.stderr, flush=True)
            work = generate(directory, args.events, args.seed)
            size_mib = work.events_file.stat().st_size / 2**20
            print(f"Input: {len(work.values):,} messages ({size_mib:.1f} MiB)\n")
            children = side_by_side(work, args.runs)
            print(f"Side by side, {args.runs} alternating runs each, min / median / max:\n")
            print(render_children(children))
            print()
            for name in ("vigil", "baseline"):
                print(f"{name + ':':10s}{children[name][-1].summary}")
            print("  in-process stages...", file=sys.stderr, flush=True)
            rows = stage_rows(work, args.repeat)
            print(f"\nPer stage, in-process (fastest of {args.repeat}; GC tuned as the drivers do):\n")
            print(render_stages(rows))
            print("\nFootprint:\n")
            sizes_lines = footprint(work)
            print(table([("state", "bytes"), *sizes_lines], numeric_from=99))
            document |= {
                "children": {k: [asdict(r) for r in v] for k, v in children.items()},
                "stages": [row.as_json() for row in rows],
                "footprint": dict(sizes_lines),
            }
    finally:
        if args.keep:
            print(f"kept {directory}", file=sys.stderr)
        else:
            temp.cleanup()
    print(f"\nLoad average at end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if args.json:
        args.json.write_text(json.dumps(document, indent=2, default=str) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
