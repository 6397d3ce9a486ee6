"""Detection quality of Vigil's shipped detectors, next to river's defaults, in one run.

Why this exists: a monitor is only as useful as its delay and its false alarm rate.
This script measures both on synthetic streams with known change points, for the
detector defaults Vigil ships (``detectors/defaults.yaml``) and for river's own
detectors with their default settings, seeds fixed so every run prints the same
table:

- numeric streams, N(0, 1), change at value 1000: mean shift 0.5 / 1 / 2 sigma,
  variance x2 / x4, a gradual ramp to +2 sigma over 1000 values; plus long
  stationary streams for false alarms per 10k values;
- a categorical stream (4 categories, 40/30/20/10% -> 30/30/20/20%);
- error rates (10% -> 15% / 20%, change at labelled event 1000);
- bias injection: two segments at a 30% positive rate, one drops to 15% (or 22%)
  at event 2000 of the model, while the other stays;
- anomalies: river's ``datasets.Shuttle``, first 10k rows, score-then-learn, ROC AUC;
- speed: the default detector set per inference event with 10 numeric features;
  memory per (model, feature).

Delay counts values from the first changed one to the detection, inclusive; a
change not found within the horizon is missed. False alarms count every
detection on the stationary streams, warm-up included.

Usage::

    .venv/bin/python bench/detection.py            # 30 seeds per cell, a few minutes on 2 cores
    .venv/bin/python bench/detection.py --quick    # 5 seeds, shorter streams: smoke run
    .venv/bin/python bench/detection.py --json out.json
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import math
import os
import pickle
import platform
import random
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from importlib import metadata
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from river import anomaly, compose, datasets, drift, preprocessing

from detectors import (
    BernoulliCUSUM,
    ChiSquareWindow,
    NormalScoresCUSUM,
    RobustZScore,
    SeasonalBernoulliCUSUM,
    SeasonalCUSUM,
)
from detectors.config import load_config
from detectors.monitors.bias import Bias
from detectors.monitors.budget import Budget
from detectors.stage import DetectStage
from schemas.events import InferenceEvent, Prediction, Principal, Resource

CHANGE = 1000
BIAS_CHANGE = 2000
CATEGORIES = ["a", "b", "c", "d"]


@dataclass(frozen=True)
class Size:
    seeds: int
    stationary: int
    horizon: int
    slow_stationary: int
    slow_horizon: int
    bias_stationary: int


FULL = Size(
    seeds=30,
    stationary=40_000,
    horizon=3_000,
    slow_stationary=3_000,
    slow_horizon=1_000,
    bias_stationary=20_000,
)
QUICK = Size(
    seeds=5, stationary=5_000, horizon=2_000, slow_stationary=1_000, slow_horizon=500, bias_stationary=3_000
)


# --- detectors under test ------------------------------------------------------------


class RiverDrift:
    """A river drift detector behind ``update`` / ``drift_detected``, optionally inverted input."""

    def __init__(self, make: Callable[[], Any], invert: bool = False) -> None:
        self.detector = make()
        self.invert = invert

    def update(self, x: Any) -> None:
        self.detector.update((1 - x) if self.invert else x)

    @property
    def drift_detected(self) -> bool:
        return bool(self.detector.drift_detected)


class OneHotADWIN:
    """Baseline for categorical streams: one river ADWIN per category indicator."""

    def __init__(self) -> None:
        self.detectors = {c: drift.ADWIN() for c in CATEGORIES}
        self.drift_detected = False

    def update(self, x: str) -> None:
        hits = False
        for category, detector in self.detectors.items():
            detector.update(1.0 if x == category else 0.0)
            hits |= detector.drift_detected
        self.drift_detected = hits


NUMERIC: dict[str, Callable[[], Any]] = {
    "vigil seasonal-cusum (cycle none)": lambda: SeasonalCUSUM(seasonality="none"),
    "vigil normal-scores-cusum": NormalScoresCUSUM,
    "river ADWIN": lambda: RiverDrift(drift.ADWIN),
    "river PageHinkley": lambda: RiverDrift(drift.PageHinkley),
    "river KSWIN": lambda: RiverDrift(lambda: drift.KSWIN(seed=1)),
}
SLOW = {"river KSWIN"}
BINARY: dict[str, Callable[[], Any]] = {
    "vigil seasonal-bernoulli-cusum (cycle none)": lambda: SeasonalBernoulliCUSUM(seasonality="none"),
    "vigil bernoulli-cusum": BernoulliCUSUM,
    "river DDM": lambda: RiverDrift(drift.binary.DDM),
    "river EDDM": lambda: RiverDrift(drift.binary.EDDM),
    "river HDDM_A": lambda: RiverDrift(drift.binary.HDDMA),
    "river HDDM_W": lambda: RiverDrift(drift.binary.HDDMW),
    "river FHDDM (fed 1 = correct)": lambda: RiverDrift(drift.binary.FHDDM, invert=True),
}
CATEGORICAL: dict[str, Callable[[], Any]] = {
    "vigil chi-square-window": ChiSquareWindow,
    "river ADWIN per category": OneHotADWIN,
}


# --- streams -------------------------------------------------------------------------


def numeric_stream(scenario: str, rng: random.Random, length: int) -> Iterator[float]:
    gauss = rng.gauss
    for i in range(length):
        after = i >= CHANGE
        if scenario == "stationary":
            yield gauss(0.0, 1.0)
        elif scenario.startswith("mean +"):
            yield gauss(float(scenario.split("+")[1].split()[0]) if after else 0.0, 1.0)
        elif scenario.startswith("variance x"):
            yield gauss(0.0, math.sqrt(float(scenario.split("x")[1])) if after else 1.0)
        elif scenario == "ramp to +2 sd over 1000":
            yield gauss(2.0 * min(1.0, (i - CHANGE + 1) / 1000) if after else 0.0, 1.0)
        else:
            raise ValueError(scenario)


def binary_stream(scenario: str, rng: random.Random, length: int) -> Iterator[int]:
    rate_after = {"stationary": 0.10, "error rate +50%": 0.15, "error rate +100%": 0.20}[scenario]
    for i in range(length):
        yield int(rng.random() < (rate_after if i >= CHANGE else 0.10))


def categorical_stream(scenario: str, rng: random.Random, length: int) -> Iterator[str]:
    before, after = [4, 3, 2, 1], [3, 3, 2, 2]
    for i in range(length):
        weights = after if scenario != "stationary" and i >= CHANGE else before
        yield rng.choices(CATEGORIES, weights)[0]


STREAMS = {"numeric": numeric_stream, "binary": binary_stream, "categorical": categorical_stream}
DETECTORS = {"numeric": NUMERIC, "binary": BINARY, "categorical": CATEGORICAL}
SCENARIOS = {
    "numeric": [
        "mean +0.5 sd",
        "mean +1 sd",
        "mean +2 sd",
        "variance x2",
        "variance x4",
        "ramp to +2 sd over 1000",
    ],
    "binary": ["error rate +50%", "error rate +100%"],
    "categorical": ["categorical 40/30/20/10 -> 30/30/20/20"],
}


# --- cells ---------------------------------------------------------------------------


@dataclass
class Cell:
    family: str
    detector: str
    scenario: str
    seeds: int
    median_delay: float | None = None
    p90_delay: float | None = None
    missed: float | None = None
    false_alarms_per_10k: float | None = None
    values: int = 0
    seconds: float = 0.0


def run_cell(family: str, detector: str, scenario: str, size: Size) -> Cell:
    started = time.perf_counter()
    make = DETECTORS[family][detector]
    stream = STREAMS[family]
    slow = detector in SLOW
    cell = Cell(family, detector, scenario, size.seeds)
    if scenario == "stationary":
        length = size.slow_stationary if slow else size.stationary
        alarms = 0
        for seed in range(size.seeds):
            rng = random.Random(f"{family}/stationary/{seed}")
            d = make()
            for x in stream("stationary", rng, length):
                d.update(x)
                alarms += d.drift_detected
        cell.values = length * size.seeds
        cell.false_alarms_per_10k = alarms / cell.values * 10_000
    else:
        horizon = size.slow_horizon if slow else size.horizon
        delays: list[int | None] = []
        for seed in range(size.seeds):
            rng = random.Random(f"{family}/{scenario}/{seed}")
            d = make()
            found = None
            for i, x in enumerate(
                stream(scenario if family != "categorical" else "shift", rng, CHANGE + horizon)
            ):
                d.update(x)
                if d.drift_detected and i >= CHANGE:
                    found = i - CHANGE + 1
                    break
            delays.append(found)
        cell.values = size.seeds * (CHANGE + horizon)
        _summarize(cell, delays)
    cell.seconds = time.perf_counter() - started
    return cell


def _summarize(cell: Cell, delays: list[int | None]) -> None:
    found = sorted(d for d in delays if d is not None)
    cell.missed = 1.0 - len(found) / len(delays)
    if found:
        cell.median_delay = statistics.median(found)
        cell.p90_delay = _quantile(found, 0.9)


def _quantile(ordered: list[int], p: float) -> float:
    """Nearest-rank quantile (the value at or below which p of the values lie)."""
    return float(ordered[max(0, math.ceil(p * len(ordered)) - 1)])


# --- bias ------------------------------------------------------------------------------


def _events(rng: random.Random, length: int, rate_a: Callable[[int], float]) -> Iterator[InferenceEvent]:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    principal = Principal.model_construct(id="svc", kind="service", roles=())
    resource = Resource.model_construct(kind="model", id="credit-v2", version=None)
    for i in range(length):
        group = "a" if rng.random() < 0.5 else "b"
        rate = rate_a(i) if group == "a" else 0.30
        yield InferenceEvent.model_construct(
            event_id=f"e{i}",
            ts=t0 + timedelta(seconds=i),
            model_id="credit-v2",
            principal=principal,
            resource=resource,
            prediction=Prediction.model_construct(label=int(rng.random() < rate), score=None),
            segment={"group": group},
        )


def run_bias_cell(scenario: str, size: Size) -> Cell:
    started = time.perf_counter()
    config = load_config().for_model("credit-v2")
    cell = Cell("bias", "vigil bias monitor", scenario, size.seeds)
    if scenario == "stationary":
        alarms = 0
        for seed in range(size.seeds):
            monitor = Bias(Budget(10_000))
            for event in _events(
                random.Random(f"bias/stationary/{seed}"), size.bias_stationary, lambda i: 0.30
            ):
                alarms += len(monitor.observe(event, config))
        cell.values = size.seeds * size.bias_stationary
        cell.false_alarms_per_10k = alarms / cell.values * 10_000
    else:
        target = float(scenario.split("-> ")[1].rstrip("%")) / 100
        delays: list[int | None] = []
        rules: list[str] = []
        for seed in range(size.seeds):
            monitor = Bias(Budget(10_000))
            found = None
            events = _events(
                random.Random(f"bias/{scenario}/{seed}"),
                BIAS_CHANGE + 4 * size.horizon,
                lambda i: target if i >= BIAS_CHANGE else 0.30,
            )
            for i, event in enumerate(events):
                signals = monitor.observe(event, config)
                if signals and i >= BIAS_CHANGE:
                    found = i - BIAS_CHANGE + 1
                    rules.append(signals[0].rule)
                    break
            delays.append(found)
        cell.values = size.seeds * (BIAS_CHANGE + 4 * size.horizon)
        _summarize(cell, delays)
        cell.detector += " (" + ", ".join(f"{r} x{rules.count(r)}" for r in sorted(set(rules))) + ")"
    cell.seconds = time.perf_counter() - started
    return cell


# --- anomalies ---------------------------------------------------------------------------


class EWMAZScore:
    """The plain baseline: per-feature EWMA mean and variance, |z| summed or maxed."""

    def __init__(self, alpha: float = 0.01, combine: Callable[[list[float]], float] = sum) -> None:
        self.alpha, self.combine = alpha, combine
        self.stats: dict[str, list[float]] = {}

    def score_one(self, x: dict[str, float]) -> float:
        zs = [abs(v - s[0]) / math.sqrt(s[1] + 1e-9) for k, v in x.items() if (s := self.stats.get(k))]
        return self.combine(zs) if zs else 0.0

    def learn_one(self, x: dict[str, float]) -> None:
        for k, v in x.items():
            s = self.stats.get(k)
            if s is None:
                self.stats[k] = [v, 0.0]
                continue
            d = v - s[0]
            s[0] += self.alpha * d
            s[1] = (1 - self.alpha) * (s[1] + self.alpha * d * d)


ANOMALY: dict[str, Callable[[], Any]] = {
    "vigil robust-zscore": RobustZScore,
    "EWMA z-score, sum of |z| (baseline)": EWMAZScore,
    "EWMA z-score, max |z| (baseline)": lambda: EWMAZScore(combine=max),
    "river HalfSpaceTrees (MinMaxScaler)": lambda: compose.Pipeline(
        preprocessing.MinMaxScaler(), anomaly.HalfSpaceTrees(seed=42)
    ),
}


def roc_auc(scores: list[float], labels: list[bool]) -> float:
    """Mann-Whitney AUC with mid-ranks for ties."""
    order = sorted(range(len(scores)), key=scores.__getitem__)
    ranks = [0.0] * len(scores)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and scores[order[j + 1]] == scores[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    positives = sum(labels)
    negatives = len(labels) - positives
    rank_sum = sum(r for r, y in zip(ranks, labels, strict=True) if y)
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def run_anomaly(name: str, rows: int) -> dict[str, Any]:
    data = list(itertools.islice(datasets.Shuttle(), rows))
    model = ANOMALY[name]()
    scores = []
    started = time.perf_counter()
    for x, _ in data:
        scores.append(model.score_one(x))
        model.learn_one(x)
    elapsed = time.perf_counter() - started
    return {
        "detector": name,
        "rows": rows,
        "anomalies": sum(bool(y) for _, y in data),
        "roc_auc": roc_auc(scores, [bool(y) for _, y in data]),
        "us_per_row": elapsed / rows * 1e6,
    }


# --- speed and memory -------------------------------------------------------------------


def _inference_events(count: int, features: int) -> list[InferenceEvent]:
    rng = random.Random(99)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    principal = Principal.model_construct(id="svc", kind="service", roles=())
    resource = Resource.model_construct(kind="model", id="fraud-v3", version=None)
    events = []
    for i in range(count):
        score = rng.random()
        events.append(
            InferenceEvent.model_construct(
                event_id=f"e{i}",
                ts=t0 + timedelta(milliseconds=10 * i),
                model_id="fraud-v3",
                model_version="3",
                artifact_digest="sha256:abc",
                request_id=f"r{i}",
                principal=principal,
                resource=resource,
                features={f"f{k}": rng.gauss(k, 1.0) for k in range(features)},
                prediction=Prediction.model_construct(label=int(score > 0.5), score=score),
                latency_ms=rng.lognormvariate(2.5, 0.3),
                segment={},
                tokens=None,
            )
        )
    return events


def speed(events: int) -> list[dict[str, Any]]:
    data = _inference_events(events, 10)
    warm, timed = data[: events // 2], data[events // 2 :]
    results = []

    def measure(name: str, note: str, setup: Callable[[], Callable[[InferenceEvent], Any]]) -> None:
        best = math.inf
        for _ in range(3):
            observe = setup()
            for event in warm:
                observe(event)
            gc.collect()
            started = time.perf_counter()
            for event in timed:
                observe(event)
            best = min(best, (time.perf_counter() - started) / len(timed) * 1e6)
        results.append({"what": name, "us_per_event": best, "note": note})

    def stage() -> Callable[[InferenceEvent], Any]:
        s = DetectStage()
        return lambda e: s.observe(e, topic="ai.inference", partition=0, offset=-1)

    def adwin() -> Callable[[InferenceEvent], Any]:
        detectors = {f"f{k}": drift.ADWIN() for k in range(10)}

        def observe(event: InferenceEvent) -> None:
            for name, value in event.features.items():
                detectors[name].update(value)

        return observe

    def seasonal() -> Callable[[InferenceEvent], Any]:
        detectors = {f"f{k}": SeasonalCUSUM() for k in range(10)}

        def observe(event: InferenceEvent) -> None:
            at = event.ts.timestamp()
            for name, value in event.features.items():
                detectors[name].update(value, at)

        return observe

    def nscusum() -> Callable[[InferenceEvent], Any]:
        detectors = {f"f{k}": NormalScoresCUSUM() for k in range(10)}

        def observe(event: InferenceEvent) -> None:
            for name, value in event.features.items():
                detectors[name].update(value)

        return observe

    measure(
        "DetectStage.observe, shipped defaults",
        "10 numeric features + score, label, latency; performance join, bias and supply-chain checks",
        stage,
    )
    measure(
        "10 x SeasonalCUSUM.update",
        "the feature detectors alone (weekly; first day: gross changes)",
        seasonal,
    )
    measure("10 x NormalScoresCUSUM.update", "the previous default feature detector", nscusum)
    measure("10 x river ADWIN.update (baseline)", "river's default ADWIN per feature", adwin)
    return results


def memory() -> list[dict[str, Any]]:
    rng = random.Random(5)
    values = [rng.gauss(0, 1) for _ in range(10_000)]
    out = []
    start = datetime(2026, 1, 5, tzinfo=UTC).timestamp()
    for name, make in [
        ("SeasonalCUSUM weekly (9 days, one value per 20 s)", SeasonalCUSUM),
        ("NormalScoresCUSUM (after warm-up)", NormalScoresCUSUM),
        ("river ADWIN (after 10k values)", drift.ADWIN),
        ("ChiSquareWindow (5 categories)", ChiSquareWindow),
        ("BernoulliCUSUM", BernoulliCUSUM),
    ]:
        count = 50 if "Seasonal" in name else 200
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        kept = []
        for _ in range(count):
            d = make()
            if "Seasonal" in name:
                for i in range(9 * 4320):
                    d.update(values[i % len(values)], start + 20 * i)
                kept.append(d)
                continue
            for v in values[:1000] if "ADWIN" not in name else values:
                if "Chi" in name:
                    d.update(CATEGORIES[int(abs(v) * 2) % 4])
                elif "Bernoulli" in name:
                    d.update(v > 1.2)
                else:
                    d.update(v)
            kept.append(d)
        after = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        out.append(
            {
                "detector": name,
                "bytes_in_memory": (after - before) / count,
                "bytes_pickled": len(pickle.dumps(kept[0])),
            }
        )
    return out


# --- report ------------------------------------------------------------------------------


def _fmt(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}"


def table(cells: list[Cell]) -> str:
    lines = [
        "| family | detector | scenario | seeds | median delay | p90 delay | missed | false alarms / 10k |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for c in cells:
        missed = "-" if c.missed is None else f"{c.missed:.0%}"
        lines.append(
            f"| {c.family} | {c.detector} | {c.scenario} | {c.seeds} | {_fmt(c.median_delay)} | "
            f"{_fmt(c.p90_delay)} | {missed} | {_fmt(c.false_alarms_per_10k, 2)} |"
        )
    return "\n".join(lines)


def _only_drift(parts: list[str], size: Size, jobs: int) -> int:
    """The drift cells of the detectors named, alone: a quick check of one change."""
    wanted = [
        (family, detector, scenario, size)
        for family, detectors in DETECTORS.items()
        for detector in detectors
        if any(part in detector for part in parts)
        for scenario in [*SCENARIOS[family], "stationary"]
    ]
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        cells = list(pool.map(run_cell, *zip(*wanted, strict=True)))
    print(table(cells))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="5 seeds and short streams (smoke run)")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--only",
        action="append",
        help="drift detectors whose name contains this (repeatable); no other table",
    )
    args = parser.parse_args(argv)
    size = QUICK if args.quick else FULL
    if args.only:
        return _only_drift(args.only, size, args.jobs)
    started = time.perf_counter()

    jobs: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []
    for family, detectors in DETECTORS.items():
        for detector in detectors:
            for scenario in [*SCENARIOS[family], "stationary"]:
                if detector in SLOW and scenario not in ("mean +1 sd", "variance x4", "stationary"):
                    continue
                jobs.append((run_cell, (family, detector, scenario, size)))
    for scenario in ["bias 30% -> 15%", "bias 30% -> 22%", "stationary"]:
        jobs.append((run_bias_cell, (scenario, size)))
    for name in ANOMALY:
        jobs.append((run_anomaly, (name, 10_000)))

    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = [pool.submit(fn, *a) for fn, a in jobs]
        outputs = [f.result() for f in futures]
    cells = [o for o in outputs if isinstance(o, Cell)]
    anomalies = [o for o in outputs if isinstance(o, dict)]
    speeds = speed(4_000 if args.quick else 20_000)
    memories = memory()

    print(f"# detection benchmark ({'quick' if args.quick else 'full'}): {size.seeds} seeds per cell")
    print(
        f"python {platform.python_version()}, river {metadata.version('river')}, {os.cpu_count()} cores, "
        f"change at value {CHANGE} (bias: event {BIAS_CHANGE}); KSWIN runs shorter streams "
        f"({size.slow_stationary} stationary, horizon {size.slow_horizon}) for its cost\n"
    )
    print(table(cells))
    print(
        "\n| anomaly detector | rows | anomalies | ROC AUC | µs / row |\n| --- | ---: | ---: | ---: | ---: |"
    )
    for a in anomalies:
        print(
            f"| {a['detector']} | {a['rows']} | {a['anomalies']} | "
            f"{a['roc_auc']:.4f} | {a['us_per_row']:.1f} |"
        )
    print("\n| speed | µs / event | what runs |\n| --- | ---: | --- |")
    for s in speeds:
        print(f"| {s['what']} | {s['us_per_event']:.1f} | {s['note']} |")
    print("\n| memory per key | bytes in memory | bytes pickled |\n| --- | ---: | ---: |")
    for m in memories:
        print(f"| {m['detector']} | {m['bytes_in_memory']:.0f} | {m['bytes_pickled']} |")
    print(f"\nelapsed {time.perf_counter() - started:.0f}s")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "cells": [asdict(c) for c in cells],
                    "anomaly": anomalies,
                    "speed": speeds,
                    "memory": memories,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
