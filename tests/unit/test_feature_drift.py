"""Feature drift per (model, feature): what a user of ``DetectStage`` sees for one feature."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from detectors.config import load_config
from detectors.stage import DetectStage
from tests.unit.detectors.events import inference

STEP = 200
"""Seconds between events: 1,000 events span ~2.3 days, so a change from event 1,000 on is judged
against a daily profile the seasonal detector has seen twice (it judges gross changes only before)."""


def run(
    value_at: Callable[[int, random.Random], Any],
    n: int,
    *,
    seed: int = 0,
    feature: str = "amount",
    stage: DetectStage | None = None,
) -> list[dict[str, Any]]:
    """Feed one feature (no score, no label, constant latency); the feature-drift findings' details."""
    stage = stage or DetectStage()
    rng = random.Random(seed)
    found = []
    for i in range(n):
        event = inference(features={feature: value_at(i, rng)}, score=None, at=STEP * i)
        for finding in stage.observe(event, topic="t", offset=i):
            assert finding.detector_or_rule == "feature-drift"
            found.append({**orjson.loads(finding.details), "position": i, "message": finding.message})
    return found


def shift_at(change: int, before: float = 50.0, after: float = 54.0, sigma: float = 4.0):
    return lambda i, rng: rng.gauss(after if i >= change else before, sigma)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_no_finding_on_a_long_stationary_stream(seed: int) -> None:
    assert run(lambda i, rng: rng.gauss(120.0, 15.0), 20_000, seed=seed) == []


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_one_sigma_mean_shift_is_found_quickly_and_once(seed: int) -> None:
    [finding] = run(shift_at(1_500), 3_000, seed=seed)  # on a Thursday: the weekday profile is learnt
    assert 1_500 <= finding["position"] <= 1_600
    assert (finding["key"], finding["change"]) == ("amount", "mean-up")
    assert finding["magnitude"]["mean_before"] == pytest.approx(50.0, abs=1.0)
    assert finding["magnitude"]["mean_after"] == pytest.approx(54.0, abs=3.0)
    assert finding["expected"]["when"].startswith(("Thursday", "Friday"))  # the profile's weekday and hour
    assert finding["since"]["events_ago"] == finding["window"]["n"] >= 1
    assert finding["since"]["first_event_index"] >= 1_440  # where the chart last stood at zero


def test_downward_shift_is_found_too() -> None:
    [finding] = run(shift_at(1_000, before=10.0, after=7.0, sigma=3.0), 2_500)
    assert finding["change"] == "mean-down"
    assert finding["magnitude"]["mean_after"] < finding["magnitude"]["mean_before"]


def test_a_fourfold_variance_is_found() -> None:
    [finding] = run(lambda i, rng: rng.gauss(0.0, 2.0 if i >= 1_000 else 1.0), 2_000, seed=4)
    assert finding["change"] == "spread-up"
    assert 1_000 <= finding["position"] < 1_100
    assert finding["magnitude"]["spread_ratio"] > 1.5


def test_a_feature_stuck_at_one_value_is_found() -> None:
    [finding] = run(lambda i, rng: rng.gauss(5.0, 1.0) if i < 1_000 else 5.0, 2_000, seed=5)
    assert finding["change"] == "spread-down"
    assert 1_000 <= finding["position"] < 1_120  # the spread-down chart needs ~80-100 values


def test_no_finding_before_a_baseline_exists() -> None:
    # a change within the warm-up (64 values) becomes part of the baseline: nothing is compared yet
    assert run(shift_at(30, before=0.0, after=5.0, sigma=1.0), 600) == []


def test_a_sustained_shift_is_one_finding_not_one_per_event() -> None:
    assert len(run(shift_at(1_000, before=0.0, after=5.0, sigma=1.0), 6_000)) == 1


def test_a_ramp_is_reported_again_only_after_a_new_baseline() -> None:
    def ramp(i: int, rng: random.Random) -> float:
        return rng.gauss(0.0 if i < 1_000 else 3.0 * ((i - 1_000) // 150 + 1), 1.0)

    found = run(ramp, 3_000)
    positions = [f["position"] for f in found]
    assert positions
    assert 1_000 <= positions[0] < 1_020
    # one finding per step of the staircase at most, not one per event
    assert len(positions) <= (3_000 - 1_000) // 150 + 1


def test_two_separate_shifts_are_two_findings() -> None:
    found = run(lambda i, rng: rng.gauss(0.0 if i < 1_000 else 5.0 if i < 3_000 else 10.0, 1.0), 4_000)
    assert [f["position"] // 100 for f in found] == [10, 30]


def test_booleans_and_strings_are_watched_as_categories() -> None:
    stage = DetectStage()
    rng = random.Random(6)
    found = []
    for i in range(3_000):
        flipped = i >= 1_500
        event = inference(
            features={"card_present": rng.random() < (0.2 if flipped else 0.7)}, score=None, at=i
        )
        found += stage.observe(event, topic="t", offset=i)
    [finding] = found
    details = orjson.loads(finding.details)
    assert (details["key"], details["change"]) == ("card_present", "distribution")
    assert details["window"]["shares"]["False"] > details["reference"]["shares"]["False"] + 0.15


def test_integers_flipping_from_zero_to_one_are_numbers_and_drift() -> None:
    [finding] = run(lambda i, rng: int(rng.random() < (0.9 if i >= 1_000 else 0.1)), 2_000, feature="flag")
    assert finding["key"] == "flag"
    assert 1_000 <= finding["position"] < 1_030


def test_keys_are_per_model_and_feature() -> None:
    stage = DetectStage()
    rng = random.Random(3)
    found = []
    for i in range(2_500):
        drifting = i >= 1_000
        events = [
            inference(
                features={"amount": rng.gauss(5 if drifting else 0, 1), "risk": rng.gauss(0, 1)}, score=None
            ),
            inference(model_id="credit-v2", features={"amount": rng.gauss(0, 1)}, score=None),
        ]
        for event in events:
            found += stage.observe(event)
    assert [(f.model_id, orjson.loads(f.details)["key"]) for f in found] == [("fraud-v3", "amount")]


def test_the_key_budget_bounds_state_and_admitted_keys_keep_working() -> None:
    config = load_config().model_copy(
        update={"limits": load_config().limits.model_copy(update={"max_keys_per_partition": 4})}
    )
    stage = DetectStage(config)
    rng = random.Random(5)
    found = []
    for i in range(2_500):
        level = 5.0 if i >= 1_000 else 0.0
        event = inference(features={"amount": rng.gauss(level, 1), "late": rng.gauss(level, 1)}, score=None)
        found += stage.observe(event)
        stage.observe(inference(model_id=f"other-{i % 20}", features={"x": 1.0}))
    partition = stage.partition(0)
    assert partition.budget.used == 4
    assert partition.budget.refused > 0
    assert {orjson.loads(f.details)["key"] for f in found} == {"amount", "late"}


def test_one_absurd_value_does_not_blind_the_detector() -> None:
    """A producer's DBL_MAX sentinel, in the baseline or after it, must not disable
    drift detection for that feature, nor make events fail."""

    def values(i: int, rng: random.Random) -> float:
        if i in (100, 200, 500):
            return 1.7976931348623157e308
        return rng.gauss(0.0 if i < 3_000 else 5.0, 1.0)

    found = run(values, 6_000, seed=11)
    assert [f["position"] // 100 for f in found] == [30]
