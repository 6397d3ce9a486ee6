"""Drift detection on realistic traffic: daily and weekly cycles, autocorrelation, holidays, ramps.

Why this exists: ``bench/detection.py`` measures detectors on independent,
stationary streams, where they excel. Inference traffic follows the clock: feature
levels, scores, latencies and error rates move with the hour of the day and the day
of the week, noise is autocorrelated (a slow user population drifts minute to
minute), a holiday looks like a Sunday, and usage grows slowly. A detector that
alarms on all of that teaches SREs to ignore the channel. This script measures, side
by side in one run, Vigil's shipped defaults (``detectors/defaults.yaml``), Vigil's
stationary detectors and river's defaults on the same traffic:

- **ordinary weeks** (no real change), per model-week: findings by rule and alerts.
  Alerts are counted as the alert gate groups findings (``alerting/gate.py``): one
  instance per (rule, model) until it has been quiet for ``resolve_timeout``
  (300 s), measured in event time;
- **real changes on top of the cycle** (1 sd mean shift, variance x2 of a feature,
  error rate +50%, each lasting 6 h and starting at a random time of the second
  week): delay in events of the changed stream, and the share missed.

Traffic: one event per model every 20 s for two weeks starting on a Monday (UTC);
5 numeric features, ``prediction.score``, ``latency_ms`` and one feedback label per
prediction. Weekends (and, in the holiday scenario, the Wednesday of the second
week) shift features by +0.5 sd and latency up. Noise is AR(1) with unit marginal
variance. The first week is the detectors' learning period and is counted too:
what a new user sees. A model's streams are fed event by event, sharing the model's
holiday judgement (``ModelDay``) as the monitors build them.

Usage::

    .venv/bin/python bench/seasonal.py            # 5 models, 30 seeds per change cell
    .venv/bin/python bench/seasonal.py --quick    # 2 models, 5 seeds: smoke run
    .venv/bin/python bench/seasonal.py --json out.json
    .venv/bin/python bench/seasonal.py --findings 4 --only "vigil defaults"   # each finding of row 4
    .venv/bin/python bench/seasonal.py --first-model 5 --models 10   # ten other models (seeds 1005-1014)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from river import drift
from scipy.signal import lfilter

from alerting.gate import AlertGate
from detectors import BernoulliCUSUM, NormalScoresCUSUM
from detectors.base import DriftDetector
from detectors.config import load_config
from detectors.drift.model_day import ModelDay

STEP_SECONDS = 20
DAY = 86_400
EVENTS_PER_DAY = DAY // STEP_SECONDS
DAYS = 14
START = datetime(2026, 1, 5, tzinfo=UTC).timestamp()  # a Monday
HOLIDAY = 9  # the Wednesday of the second week
RESOLVE_TIMEOUT = AlertGate().resolve_timeout
FEATURES = [f"f{k}" for k in range(5)]
STREAMS = [*FEATURES, "prediction.score", "latency_ms", "error"]
RULES = {
    **dict.fromkeys(FEATURES, "feature-drift"),
    "prediction.score": "prediction-drift",
    "latency_ms": "latency-spike",
    "error": "performance-drift",
}
CHANGE_HOURS = 6
MODEL_SEED = 1000
"""Model ``m`` of the ordinary-traffic rows is generated from seed ``MODEL_SEED + m``: the table's
models are 0-4; ``--first-model 5 --models 10`` measures ten others (seeds 1005-1014)."""


@dataclass(frozen=True)
class Traffic:
    """How one scenario's streams move when nothing really changes."""

    name: str
    feature_cycle: float  # amplitude of the daily cycle of features, in sd
    weekend: float  # offset of features on weekends (and holidays), in sd
    phi: float  # AR(1) coefficient of every stream's noise
    holiday: bool = False
    ramp_per_week: float = 0.0  # slow growth of features (sd) and log-latency (x0.2) per week
    output_cycle: bool = True  # score, latency and error rate follow the day


TRAFFIC = [
    Traffic("features iid; score, latency, errors follow the day", 0.0, 0.0, 0.0),
    Traffic("features: daily cycle +-0.5 sd, weekend +0.5 sd; iid noise", 0.5, 0.5, 0.0),
    Traffic("same, AR(1) noise phi 0.8", 0.5, 0.5, 0.8),
    Traffic("same, phi 0.9, a holiday, slow ramp +0.5 sd/week", 0.5, 0.5, 0.9, True, 0.5),
]
CHANGE_TRAFFIC = [TRAFFIC[1], TRAFFIC[2]]
CHANGES = ["f2 mean +1 sd", "f2 variance x2", "error rate +50%"]


@dataclass(frozen=True)
class Change:
    kind: str
    start: int  # index of the first changed event
    length: int


def _ar1(rng: np.random.Generator, phi: float, n: int) -> np.ndarray:
    """AR(1) noise with unit marginal variance."""
    innovations = rng.standard_normal(n) * math.sqrt(1.0 - phi * phi)
    first = rng.standard_normal()
    out: np.ndarray = lfilter([1.0], [1.0, -phi], innovations, zi=[phi * first])[0]
    return out


def generate(traffic: Traffic, seed: int, change: Change | None = None) -> dict[str, Any]:
    """Every stream of one model: timestamps and values (floats, or 0/1 for ``error``)."""
    rng = np.random.default_rng(seed)
    n = DAYS * EVENTS_PER_DAY
    at = START + STEP_SECONDS * np.arange(n) + rng.uniform(0, STEP_SECONDS)
    hour = (at % DAY) / 3600.0
    day = ((at - START) // DAY).astype(int)
    off = (day % 7 >= 5) | ((day == HOLIDAY) if traffic.holiday else False)
    cycle = np.sin(2 * math.pi * (hour - 8.0) / 24.0)  # peaks at 14:00
    weeks = (at - START) / (7 * DAY)
    changed = np.zeros(n, dtype=bool)
    if change is not None:
        changed[change.start : change.start + change.length] = True
    streams: dict[str, Any] = {"at": at.tolist()}
    for k, name in enumerate(FEATURES):
        noise = _ar1(rng, traffic.phi, n)
        level = k + traffic.feature_cycle * cycle + traffic.weekend * off + traffic.ramp_per_week * weeks
        if change is not None and name == "f2":
            if change.kind.endswith("mean +1 sd"):
                level = level + changed * 1.0
            elif change.kind.endswith("variance x2"):
                noise = noise * np.where(changed, math.sqrt(2.0), 1.0)
        streams[name] = (level + noise).tolist()
    output_cycle = cycle if traffic.output_cycle else 0.0
    logit = -0.5 + 0.5 * output_cycle + 0.8 * _ar1(rng, traffic.phi, n)
    streams["prediction.score"] = (1.0 / (1.0 + np.exp(-logit))).tolist()
    log_latency = (3.0 + 0.25 * output_cycle + 0.15 * off + 0.2 * traffic.ramp_per_week * weeks) + 0.3 * _ar1(
        rng, traffic.phi, n
    )
    streams["latency_ms"] = np.exp(log_latency).tolist()
    error_rate = 0.10 * (1.0 + 0.3 * output_cycle)
    if change is not None and change.kind == "error rate +50%":
        error_rate = error_rate * np.where(changed, 1.5, 1.0)
    streams["error"] = (rng.random(n) < error_rate).astype(int).tolist()
    return streams


# --- detector sets: one detector per stream, as the monitors build them -----------------


class RiverDrift:
    def __init__(self, make: Callable[[], Any]) -> None:
        self.detector = make()

    def update(self, x: Any, at: float | None = None) -> None:
        self.detector.update(x)

    @property
    def drift_detected(self) -> bool:
        return bool(self.detector.drift_detected)


def _shipped(stream: str) -> DriftDetector:
    config = load_config().for_model("bench-model")
    if stream == "error":
        choice = config.performance.error_rate
    elif stream == "latency_ms":
        choice = config.operations.detector
    else:
        choice = config.features.numeric
    detector = choice.build(config.seasonality)
    assert isinstance(detector, DriftDetector)
    return detector


SETS: dict[str, Callable[[str], Any]] = {
    "vigil defaults": _shipped,
    "vigil stationary (normal-scores / bernoulli cusum)": lambda s: (
        BernoulliCUSUM() if s == "error" else NormalScoresCUSUM()
    ),
    "river ADWIN (errors: DDM)": lambda s: RiverDrift(drift.binary.DDM if s == "error" else drift.ADWIN),
    "river PageHinkley (errors: HDDM_A)": lambda s: RiverDrift(
        drift.binary.HDDMA if s == "error" else drift.PageHinkley
    ),
}


def _counts(detector: Any, stream: str) -> bool:
    """Whether a detection becomes a finding, as the monitors decide.

    Latency reports increases only, error rates rises only; river's detectors do
    not say which way a change went, so every one of their detections counts.
    """
    evidence = getattr(detector, "evidence", None)
    if not evidence:
        return True
    if stream == "error":
        return bool(evidence["chart"] == "rate-up")
    if stream == "latency_ms":
        before, after = evidence["reference"], evidence["window"]
        return bool(after["mean"] > before["mean"] or after.get("p95", 0.0) > before.get("p95", 0.0))
    return True


# --- cells --------------------------------------------------------------------------------


@dataclass
class OrdinaryCell:
    traffic: str
    detectors: str
    models: int
    findings: dict[str, float] = field(default_factory=dict)  # per model-week, by rule
    alerts_per_model_week: float = 0.0
    worst_model_week_findings: float = 0.0
    seconds: float = 0.0


def model_findings(
    set_name: str, streams: dict[str, Any], names: list[str], stop: int | None = None
) -> Iterator[tuple[int, str, Any]]:
    """Each finding (event index, stream, detector) of one model's streams ``names`` over its first
    ``stop`` events, fed as the monitors feed them: event by event, the detectors that judge
    holidays sharing the model's judgement (``ModelDay``)."""
    detectors = [(name, SETS[set_name](name), streams[name]) for name in names]
    day = ModelDay()
    for _, detector, _ in detectors:
        day.join(detector)
    for i, t in enumerate(streams["at"][:stop]):
        for name, detector, values in detectors:
            detector.update(values[i], t)
            if detector.drift_detected and _counts(detector, name):
                yield i, name, detector


def ordinary(traffic: Traffic, set_name: str, models: int, first_model: int = 0) -> OrdinaryCell:
    started = time.perf_counter()
    cell = OrdinaryCell(traffic.name, set_name, models)
    weeks = models * DAYS / 7
    by_rule: dict[str, int] = dict.fromkeys(sorted(set(RULES.values())), 0)
    alerts = 0
    worst = 0
    for model in range(first_model, first_model + models):
        streams = generate(traffic, seed=MODEL_SEED + model)
        at = streams["at"]
        model_findings_count = 0
        times: dict[str, list[float]] = {rule: [] for rule in by_rule}
        for i, stream, _ in model_findings(set_name, streams, STREAMS):
            times[RULES[stream]].append(at[i])
        for rule, seen in times.items():
            by_rule[rule] += len(seen)
            model_findings_count += len(seen)
            alerts += _instances(sorted(seen))
        worst = max(worst, model_findings_count)
    cell.findings = {rule: count / weeks for rule, count in by_rule.items()}
    cell.alerts_per_model_week = alerts / weeks
    cell.worst_model_week_findings = worst / (DAYS / 7)
    cell.seconds = time.perf_counter() - started
    return cell


def findings_of(traffic: Traffic, set_name: str, models: int, first_model: int = 0) -> list[str]:
    """Every finding of one ordinary-traffic row, one line each: which model, stream and time,
    which chart, how far from what was expected. What a row's count is made of."""
    lines = []
    for model in range(first_model, first_model + models):
        streams = generate(traffic, seed=MODEL_SEED + model)
        for i, stream, detector in model_findings(set_name, streams, STREAMS):
            when = datetime.fromtimestamp(streams["at"][i], UTC).strftime("%a day %d %H:%M")
            evidence = getattr(detector, "evidence", None) or {}
            detail = ""
            if "shift_sigmas" in evidence:
                detail = (
                    f"{evidence['chart']}, {evidence['shift_sigmas']:+.2f} sd, spread x"
                    f"{evidence['spread_ratio']:.2f}, over {evidence['events_since_change']} events, "
                    f"expected for {evidence['expected']['when'] or 'everything so far'}"
                )
            elif "chart" in evidence:
                detail = str(evidence["chart"])
            lines.append(f"model {model} | {stream} | {when} | {RULES[stream]} | {detail}")
    return lines


def _instances(times: list[float]) -> int:
    """Alert instances: a new one after ``resolve_timeout`` without an occurrence."""
    count, last = 0, -math.inf
    for t in times:
        if t - last >= RESOLVE_TIMEOUT:
            count += 1
        last = t
    return count


@dataclass
class ChangeCell:
    traffic: str
    change: str
    detectors: str
    seeds: int
    median_delay: float | None = None
    p90_delay: float | None = None
    max_delay: float | None = None
    missed: float = 0.0
    false_before_change: float = 0.0  # findings on the changed stream before the change, per run
    seconds: float = 0.0


def changed(traffic: Traffic, kind: str, set_name: str, seeds: int) -> ChangeCell:
    started = time.perf_counter()
    cell = ChangeCell(traffic.name, kind, set_name, seeds)
    stream = "error" if kind.startswith("error") else "f2"
    length = CHANGE_HOURS * 3600 // STEP_SECONDS
    delays: list[int | None] = []
    early = 0
    # A changed feature is fed with the model's other streams (the model's holiday judgement
    # sees them unchanged): one feature moving is a change, not a holiday.
    names = [stream] if stream == "error" else STREAMS[:-1]
    for seed in range(seeds):
        rng = np.random.default_rng(50_000 + seed)
        start = int(rng.integers(7 * EVENTS_PER_DAY, 12 * EVENTS_PER_DAY))
        streams = generate(traffic, seed=2000 + seed, change=Change(kind, start, length))
        found = None
        for i, name, _ in model_findings(set_name, streams, names, stop=start + length):
            if name != stream:
                continue
            if i >= start:
                found = i - start + 1
                break
            early += 1
        delays.append(found)
    found_delays = sorted(d for d in delays if d is not None)
    cell.missed = 1.0 - len(found_delays) / len(delays)
    if found_delays:
        cell.median_delay = statistics.median(found_delays)
        cell.p90_delay = float(found_delays[max(0, math.ceil(0.9 * len(found_delays)) - 1)])
        cell.max_delay = float(found_delays[-1])
    cell.false_before_change = early / seeds
    cell.seconds = time.perf_counter() - started
    return cell


# --- report ---------------------------------------------------------------------------


def _fmt(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def report(ordinary_cells: list[OrdinaryCell], change_cells: list[ChangeCell]) -> str:
    rules = sorted(set(RULES.values()))
    lines = [
        "| traffic (no real change) | detectors | "
        + " | ".join(rules)
        + " | findings / model-week | worst model-week | alerts / model-week |",
        "| --- | --- | " + " | ".join("---:" for _ in rules) + " | ---: | ---: | ---: |",
    ]
    for c in ordinary_cells:
        total = sum(c.findings.values())
        lines.append(
            f"| {c.traffic} | {c.detectors} | "
            + " | ".join(_fmt(c.findings[r], 1) for r in rules)
            + f" | {total:.1f} | {c.worst_model_week_findings:.1f} | {c.alerts_per_model_week:.1f} |"
        )
    lines += [
        "",
        "| traffic | change (6 h) | detectors | seeds | median delay | p90 | max | missed "
        "| findings before the change / run |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for c in change_cells:
        lines.append(
            f"| {c.traffic} | {c.change} | {c.detectors} | {c.seeds} | {_fmt(c.median_delay)} | "
            f"{_fmt(c.p90_delay)} | {_fmt(c.max_delay)} | {c.missed:.0%} | {c.false_before_change:.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 models and 5 seeds (smoke run)")
    parser.add_argument("--models", type=int, help="models per ordinary-traffic cell (default 5)")
    parser.add_argument(
        "--first-model",
        type=int,
        default=0,
        help="first model of the ordinary-traffic rows (seed 1000 + model; default 0, the table's models)",
    )
    parser.add_argument("--seeds", type=int, help="runs per change cell (default 30)")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--only", action="append", help="detector sets whose name contains this (repeatable; default all)"
    )
    parser.add_argument(
        "--findings",
        type=int,
        metavar="ROW",
        help="list every finding of ordinary-traffic row ROW (1-4) for the selected detector sets, then stop",
    )
    args = parser.parse_args(argv)
    sets = [name for name in SETS if not args.only or any(part in name for part in args.only)]
    models = args.models or (2 if args.quick else 5)
    if args.findings is not None:
        if not 1 <= args.findings <= len(TRAFFIC):
            parser.error(f"--findings takes a row from 1 to {len(TRAFFIC)}")
        for set_name in sets:
            print(f"# {TRAFFIC[args.findings - 1].name}: {set_name}, {models} models x {DAYS} days")
            print("\n".join(findings_of(TRAFFIC[args.findings - 1], set_name, models, args.first_model)))
        return 0
    seeds = args.seeds or (5 if args.quick else 30)
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        ordinary_futures = [
            pool.submit(ordinary, traffic, set_name, models, args.first_model)
            for traffic in TRAFFIC
            for set_name in sets
        ]
        change_futures = [
            pool.submit(changed, traffic, kind, set_name, seeds)
            for traffic in CHANGE_TRAFFIC
            for kind in CHANGES
            for set_name in sets
        ]
        ordinary_cells = [f.result() for f in ordinary_futures]
        change_cells = [f.result() for f in change_futures]
    print(f"# seasonal-traffic benchmark: {models} models x {DAYS} days, {seeds} seeds per change cell")
    print(
        f"python {platform.python_version()}, river {metadata.version('river')}, one event per model "
        f"every {STEP_SECONDS} s ({7 * EVENTS_PER_DAY} per model-week), alerts grouped with "
        f"resolve_timeout {RESOLVE_TIMEOUT:.0f} s\n"
    )
    print(report(ordinary_cells, change_cells))
    print(f"\nelapsed {time.perf_counter() - started:.0f}s")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "ordinary": [asdict(c) for c in ordinary_cells],
                    "changes": [asdict(c) for c in change_cells],
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
