"""detectors.feature_drift: ADWIN mean-shift per (model, numeric feature)."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from detectors import DriftSignal, FeatureDriftMonitor


def run(
    monitor: FeatureDriftMonitor,
    value_at: Callable[[int, random.Random], object],
    n: int,
    *,
    seed: int = 0,
    model: str = "fraud-v3",
    feature: str = "amount",
) -> list[DriftSignal]:
    rng = random.Random(seed)
    signals: list[DriftSignal] = []
    for i in range(n):
        signals += monitor.update(model, {feature: value_at(i, rng)})
    return signals


def shift_at(change: int, before: float = 50.0, after: float = 54.0, sigma: float = 4.0):
    return lambda i, rng: rng.gauss(after if i >= change else before, sigma)


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_no_signal_on_a_long_stationary_stream(seed: int) -> None:
    monitor = FeatureDriftMonitor()
    assert run(monitor, lambda i, rng: rng.gauss(120.0, 15.0), 20_000, seed=seed) == []


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_one_sigma_mean_shift_is_detected_quickly(seed: int) -> None:
    monitor = FeatureDriftMonitor()
    change = 2_000
    signals = run(monitor, shift_at(change), 4_000, seed=seed)
    assert signals, "a 1-sigma shift went unnoticed"
    first = signals[0]
    assert change < first.seen <= change + 300
    assert (first.model_id, first.feature) == ("fraud-v3", "amount")
    assert first.mean_before == pytest.approx(50.0, abs=1.0)
    assert first.mean_recent == pytest.approx(54.0, abs=2.0)
    assert first.recent_events == 32
    assert first.baseline_events > 1_000
    assert len(signals) == 1  # one shift, one signal


def test_downward_shift_is_detected_too() -> None:
    signals = run(FeatureDriftMonitor(), shift_at(1_000, before=10.0, after=7.0, sigma=3.0), 2_500)
    assert len(signals) == 1
    assert signals[0].mean_recent < signals[0].mean_before


def test_warmup_suppresses_signals_before_a_baseline_exists() -> None:
    big_early_shift = shift_at(60, before=0.0, after=5.0, sigma=1.0)
    eager = run(FeatureDriftMonitor(warmup=0), big_early_shift, 200)
    assert eager, "precondition: without warm-up this early shift is signalled"
    assert all(s.seen < 200 for s in eager)

    patient = FeatureDriftMonitor(warmup=200)
    assert run(patient, big_early_shift, 200) == []


def test_signals_after_warmup_are_still_emitted() -> None:
    monitor = FeatureDriftMonitor(warmup=500)
    signals = run(monitor, shift_at(800, before=0.0, after=5.0, sigma=1.0), 1_200)
    assert len(signals) == 1
    assert signals[0].seen > 800


def test_cooldown_prevents_refiring_during_a_ramp() -> None:
    # the mean climbs in steps every 150 events: ADWIN re-cuts its window at each step
    def ramp(i: int, rng: random.Random) -> float:
        return rng.gauss(0.0 if i < 1_000 else 3.0 * ((i - 1_000) // 150 + 1), 1.0)

    restless = run(FeatureDriftMonitor(cooldown=0), ramp, 2_000)
    assert len(restless) >= 3, "precondition: without cool-down the ramp fires repeatedly"

    quiet = run(FeatureDriftMonitor(cooldown=1_000), ramp, 2_000)
    assert len(quiet) == 1
    assert quiet[0].seen == restless[0].seen


def test_cooldown_expires_and_a_later_shift_fires_again() -> None:
    def two_shifts(i: int, rng: random.Random) -> float:
        return rng.gauss(0.0 if i < 1_000 else 5.0 if i < 3_000 else 10.0, 1.0)

    signals = run(FeatureDriftMonitor(cooldown=1_000), two_shifts, 4_000)
    assert len(signals) == 2
    assert 1_000 < signals[0].seen < 1_300
    assert 3_000 < signals[1].seen < 3_300
    assert signals[1].seen - signals[0].seen >= 1_000


def test_non_numeric_and_bool_features_are_ignored() -> None:
    monitor = FeatureDriftMonitor(warmup=10)
    signals = []
    for i in range(3_000):
        flipped = i >= 1_000
        signals += monitor.update(
            "fraud-v3",
            {"card_present": flipped, "country": "US" if flipped else "DE", "note": None, "tags": [1]},
        )
    assert signals == []
    assert monitor.keys == 0


def test_the_same_flip_as_integers_is_signalled() -> None:
    # contrast for the test above: 0/1 ints are numbers and do drift
    monitor = FeatureDriftMonitor(warmup=10)
    signals = run(monitor, lambda i, rng: int(i >= 1_000), 3_000, feature="card_present")
    assert [s.feature for s in signals] == ["card_present"]
    assert monitor.keys == 1


def test_ints_and_floats_both_feed_the_detector() -> None:
    monitor = FeatureDriftMonitor()
    signals = run(monitor, lambda i, rng: rng.randint(40, 60) + (30 if i >= 1_000 else 0), 2_000)
    assert len(signals) == 1


def test_keys_are_per_model_and_feature() -> None:
    monitor = FeatureDriftMonitor()
    rng = random.Random(3)
    signals: list[DriftSignal] = []
    for i in range(2_500):
        drifting = i >= 1_000
        signals += monitor.update("fraud-v3", {"amount": rng.gauss(5 if drifting else 0, 1)})
        signals += monitor.update("fraud-v3", {"merchant_risk": rng.gauss(0, 1)})
        signals += monitor.update("credit-v2", {"amount": rng.gauss(0, 1)})
    assert [(s.model_id, s.feature) for s in signals] == [("fraud-v3", "amount")]
    assert monitor.keys == 3


def test_max_keys_bounds_state() -> None:
    monitor = FeatureDriftMonitor(max_keys=5)
    for model in range(20):
        monitor.update(f"model-{model}", {f"f{k}": float(k) for k in range(10)})
    assert monitor.keys == 5


def test_keys_admitted_before_the_bound_keep_working() -> None:
    monitor = FeatureDriftMonitor(max_keys=1)
    rng = random.Random(5)
    signals: list[DriftSignal] = []
    for i in range(2_500):
        level = 5.0 if i >= 1_000 else 0.0
        signals += monitor.update("fraud-v3", {"amount": rng.gauss(level, 1), "late": rng.gauss(level, 1)})
    assert [s.feature for s in signals] == ["amount"]
    assert monitor.keys == 1


def test_one_extreme_value_does_not_blind_the_detector() -> None:
    """A single absurd (but finite) reading, e.g. a producer's DBL_MAX sentinel,
    must not disable drift detection for that feature from then on."""
    monitor = FeatureDriftMonitor()
    rng = random.Random(11)
    signals: list[DriftSignal] = []
    for i in range(6_000):
        value = 1.7976931348623157e308 if i == 500 else rng.gauss(0.0 if i < 3_000 else 5.0, 1.0)
        signals += monitor.update("fraud-v3", {"amount": value})
    assert any(s.seen > 3_000 for s in signals), "a 5-sigma shift after the outlier was never signalled"
