"""Detector snapshots: bytes, and time on the pipeline thread, beside the pickles they replace.

Why this exists: a worker snapshots each partition's detector state every
``snapshot_seconds``. The previous format pickled a whole partition on the pipeline
thread (with 1,000 models x 10 features: a 72.6 MiB pickle and a 2 s stall every
30 s). The current one (``detectors/snapshots.py``) reads only the models changed
since the last snapshot into plain data on the pipeline thread and leaves encoding
and the insert to a writer thread. This script builds one partition of ``--models``
models with 10 numeric features, a score, a label and a latency each (predictions
awaiting feedback included) and measures, alternating in the same run, min / median
/ max over ``--runs`` runs with the garbage collector on:

- **pickle (before)**: ``pickle.dumps`` of the partition, its HMAC and base64, all on
  the pipeline thread;
- **full snapshot**: the first one after a partition is assigned, every unit: the
  capture (pipeline thread) and the encoding (writer thread) apart;
- **incremental snapshot**: ``--changed`` of the models saw events since the last one.

Bytes: the pickle, every unit's JSON, and the state record of one numeric feature's
detector (the 2 KB per (model, feature) bound).

Usage::

    .venv/bin/python bench/snapshots.py                 # 1,000 models x 10 features
    .venv/bin/python bench/snapshots.py --quick         # 200 models, 3 runs
    .venv/bin/python bench/snapshots.py --json out.json
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import pickle
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from detectors.snapshots import capture, encode
from detectors.stage import DetectStage, PartitionDetectors
from detectors.state import dumps, record
from schemas.events import InferenceEvent, Prediction, Principal, Resource

KEY = b"k" * 32
FEATURES = 10
START = datetime(2026, 1, 5, tzinfo=UTC)


def build(models: int, events_per_model: int, seed: int = 7) -> DetectStage:
    """One partition whose models have seen ``events_per_model`` events each, 30 min apart
    (every hour of the weekly profile gets visits)."""
    rng = random.Random(seed)
    principal = Principal.model_construct(id="svc", kind="service", roles=())
    stage = DetectStage()
    offset = 0
    for i in range(events_per_model):
        ts = START + timedelta(minutes=30 * i)
        for m in range(models):
            score = rng.random()
            event = InferenceEvent.model_construct(
                event_id=f"e{offset}",
                ts=ts + timedelta(milliseconds=m),
                model_id=f"model-{m:04d}",
                model_version="1",
                artifact_digest=f"sha256:model-{m:04d}",
                request_id=f"r{offset}",
                principal=principal,
                resource=Resource.model_construct(kind="model", id=f"model-{m:04d}", version=None),
                features={f"f{k}": rng.gauss(k, 1.0) for k in range(FEATURES)},
                prediction=Prediction.model_construct(label=int(score > 0.5), score=score),
                latency_ms=rng.lognormvariate(2.5, 0.3),
                segment={},
                tokens=None,
            )
            stage.observe(event, topic="ai.inference", partition=0, offset=offset)
            offset += 1
    return stage


def touch(stage: DetectStage, share: float, seed: int) -> None:
    """One more event for ``share`` of the models: what changed since the last snapshot."""
    rng = random.Random(seed)
    state = stage.partition(0)
    models = sorted(state.models)
    principal = Principal.model_construct(id="svc", kind="service", roles=())
    offset = max(state.offsets.values()) + 1
    for model in rng.sample(models, max(1, int(share * len(models)))):
        event = InferenceEvent.model_construct(
            event_id=f"t{offset}",
            ts=START + timedelta(days=30, seconds=offset % 3600),
            model_id=model,
            model_version="1",
            artifact_digest=f"sha256:{model}",
            request_id=f"t{offset}",
            principal=principal,
            resource=Resource.model_construct(kind="model", id=model, version=None),
            features={f"f{k}": rng.gauss(k, 1.0) for k in range(FEATURES)},
            prediction=Prediction.model_construct(label=1, score=0.7),
            latency_ms=12.0,
            segment={},
            tokens=None,
        )
        stage.observe(event, topic="ai.inference", partition=0, offset=offset)
        offset += 1


def pickled(state: PartitionDetectors) -> int:
    """The previous ``take`` and store preparation: pickle, HMAC, base64, on the pipeline thread."""
    blob = pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)
    hmac.new(KEY, blob, hashlib.sha256).hexdigest()
    base64.b64encode(blob)
    return len(blob)


def timed(work: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = work()
    return time.perf_counter() - started, result


def run(stage: DetectStage, changed: float, runs: int) -> dict[str, Any]:
    state = stage.partition(0)
    samples: dict[str, list[float]] = {
        k: []
        for k in (
            "pickle (before), pipeline thread",
            "full snapshot: capture, pipeline thread",
            "full snapshot: encode + tag, writer thread",
            "incremental snapshot: capture, pipeline thread",
            "incremental snapshot: encode + tag, writer thread",
        )
    }
    sizes: dict[str, float] = {}
    generation = 0
    for r in range(runs):
        # alternate the order: neither format always runs on a warmer heap
        order = ["pickle", "explicit"] if r % 2 == 0 else ["explicit", "pickle"]
        for which in order:
            if which == "pickle":
                seconds, size = timed(lambda: pickled(state))
                samples["pickle (before), pipeline thread"].append(seconds)
                sizes["pickle bytes"] = size
                continue
            generation += 1
            full_taken_at = START + timedelta(seconds=generation)
            seconds, full = timed(
                lambda g=generation, at=full_taken_at: capture(
                    state, partition=0, generation=g, taken_at=at, every_unit=True
                )
            )
            samples["full snapshot: capture, pipeline thread"].append(seconds)
            seconds, rows = timed(lambda taken=full: encode(taken, scope="bench", key=KEY))
            samples["full snapshot: encode + tag, writer thread"].append(seconds)
            sizes["full snapshot bytes"] = sum(len(row.state) for row in rows)
            sizes["units in a full snapshot"] = len(rows)
            touch(stage, changed, seed=r)
            generation += 1
            seconds, incremental = timed(
                lambda g=generation, at=full_taken_at: capture(state, partition=0, generation=g, taken_at=at)
            )
            samples["incremental snapshot: capture, pipeline thread"].append(seconds)
            seconds, rows = timed(lambda taken=incremental: encode(taken, scope="bench", key=KEY))
            samples["incremental snapshot: encode + tag, writer thread"].append(seconds)
            sizes["incremental snapshot bytes"] = sum(len(row.state) for row in rows)
            sizes["units in an incremental snapshot"] = len(rows)
    numeric = [
        len(dumps(record(detector)))
        for model in state.streams._models.values()
        for detector in model.numeric.values()
        if detector is not None
    ]
    sizes["bytes per (model, numeric feature), mean"] = statistics.fmean(numeric)
    sizes["bytes per (model, numeric feature), max"] = max(numeric)
    return {
        "seconds": {k: [min(v), statistics.median(v), max(v)] for k, v in samples.items()},
        "sizes": sizes,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="200 models, 3 runs")
    parser.add_argument("--models", type=int)
    parser.add_argument("--events-per-model", type=int, default=100)
    parser.add_argument(
        "--changed", type=float, default=0.1, help="share of models changed between snapshots"
    )
    parser.add_argument("--runs", type=int)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    models = args.models or (200 if args.quick else 1_000)
    runs = args.runs or (3 if args.quick else 5)
    started = time.perf_counter()
    stage = build(models, args.events_per_model)
    built = time.perf_counter() - started
    result = run(stage, args.changed, runs)
    print(
        f"# detector snapshots: {models} models x {FEATURES} numeric features (+ score, label, latency, "
        f"predictions awaiting feedback), {args.events_per_model} events per model, "
        f"{args.changed:.0%} of models changed between snapshots"
    )
    print(
        f"python {platform.python_version()}; {runs} alternating runs, GC on; state built in {built:.0f}s\n"
    )
    print("| step | min ms | median ms | max ms |")
    print("| --- | ---: | ---: | ---: |")
    for name, (low, mid, high) in result["seconds"].items():
        print(f"| {name} | {low * 1e3:.1f} | {mid * 1e3:.1f} | {high * 1e3:.1f} |")
    before = result["seconds"]["pickle (before), pipeline thread"][1]
    for kind in ("full", "incremental"):
        after = result["seconds"][f"{kind} snapshot: capture, pipeline thread"][1]
        print(f"\n{kind} snapshot: pipeline thread {after / before:.2f}x the pickle's (medians)", end="")
    print("\n\n| size | value |\n| --- | ---: |")
    for name, value in result["sizes"].items():
        print(f"| {name} | {value:,.0f} |")
    if args.json:
        args.json.write_text(json.dumps({"models": models, **result}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
