"""What Prometheus metrics cost the pipeline, per event.

Why this exists: the worker tallies every batch's result into counters
(``vigil.metrics.Metrics.count_batch``) on the pipeline thread, so that cost is added
to every event's. This measures, in one run so the numbers are comparable:

1. the pipeline alone (``Pipeline.process`` per batch of 2000) as the baseline;
2. the pipeline followed by ``count_batch`` of each result, as the worker does;
3. ``count_batch`` alone over the results already produced.

After one warm-up pass, cases 1 and 2 alternate (which goes first alternates too), each
on a freshly built pipeline (the replay memory would otherwise reject the second pass),
``--runs`` times each; min / median / max are shown.
GC stays on. Events are ``vigil.fleet.FleetTraffic``: 200 models, 5,000 principals,
2,000 datasets, signed, so decisions and findings have production cardinality.

Usage::

    .venv/bin/python bench/metrics_overhead.py                  # 40k events, 3 runs each
    .venv/bin/python bench/metrics_overhead.py --events 4000    # smoke run
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from streams.local import batches, messages_from_lines
from vigil.fleet import Fleet, FleetTraffic, write_inventory, write_keys
from vigil.metrics import Metrics
from vigil.pipeline import BatchResult, RawMessage
from vigil.runtime import build_pipeline
from vigil.settings import Settings

BATCH = 2000


def run_pipeline(
    settings: Settings, chunks: list[list[RawMessage]], metrics: Metrics | None
) -> tuple[float, list[BatchResult]]:
    pipeline = build_pipeline(settings)
    results = []
    started = time.perf_counter()
    for chunk in chunks:
        result = pipeline.process(chunk)
        if metrics is not None:
            metrics.count_batch(result, 0.0)
        results.append(result)
    return time.perf_counter() - started, results


def spread(values: list[float]) -> str:
    return f"{min(values):7.2f} {statistics.median(values):7.2f} {max(values):7.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=40_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as directory:
        data = Path(directory)
        secrets_by_source = write_keys(data / "keys.yaml")
        write_inventory(data / "inventory.yaml", Fleet())
        settings = Settings(data_dir=data)
        lines = list(FleetTraffic(secrets_by_source, events=args.events, seed=args.seed).lines())
        chunks = list(batches(messages_from_lines(lines, "bench"), BATCH))

        _, results = run_pipeline(settings, chunks, None)  # warm-up: imports, first Cedar calls
        baseline: list[float] = []
        counted: list[float] = []
        for run in range(args.runs):
            order = [(baseline, None), (counted, Metrics())]
            for times, metrics in order if run % 2 == 0 else reversed(order):  # neither always goes first
                seconds, _ = run_pipeline(settings, chunks, metrics)
                times.append(seconds / args.events * 1e6)

        alone: list[float] = []
        for _ in range(args.runs):
            metrics = Metrics()
            started = time.perf_counter()
            for result in results:
                metrics.count_batch(result, 0.0)
            alone.append((time.perf_counter() - started) / args.events * 1e6)

    rows = {kind: sum(len(getattr(r, kind)) for r in results) for kind in BatchResult.__dataclass_fields__}
    print(f"{args.events} events in batches of {BATCH}, {args.runs} runs each; rows: {rows}")
    print(f"{'µs per event':32} {'min':>7} {'median':>7} {'max':>7}")
    print(f"{'pipeline alone (baseline)':32} {spread(baseline)}")
    print(f"{'pipeline + count_batch':32} {spread(counted)}")
    print(f"{'count_batch alone':32} {spread(alone)}")
    share = statistics.median(alone) / statistics.median(baseline) * 100
    print(f"count_batch is {share:.2f}% of the pipeline's per-event cost (medians)")


if __name__ == "__main__":
    main()
