"""Without a cycle, the profile is one precise level: a small shift is found by charts tuned to it."""

from __future__ import annotations

import random
import statistics

from detectors import SeasonalCUSUM


def delay(seed: int, shift: float) -> int | None:
    """Values from the first shifted one to the detection (1,000 values before the shift)."""
    rng = random.Random(seed)
    detector = SeasonalCUSUM(seasonality="none")
    for i in range(4_000):
        detector.update(rng.gauss(shift if i >= 1_000 else 0.0, 1.0))
        if detector.drift_detected:
            return i - 999 if i >= 1_000 else None
    return None


def test_a_half_sd_shift_without_a_cycle_is_found_within_about_80_values() -> None:
    delays = [delay(seed, 0.5) for seed in range(12)]
    assert all(d is not None for d in delays)
    # charts tuned to 0.75 sd alone: median 107 on these seeds, the slowest 179
    assert statistics.median(d for d in delays if d is not None) < 90


def test_the_small_shift_finding_says_how_far_the_level_moved() -> None:
    rng = random.Random(3)
    detector = SeasonalCUSUM(seasonality="none")
    for i in range(4_000):
        detector.update(rng.gauss(0.5 if i >= 1_000 else 0.0, 1.0))
        if detector.drift_detected:
            break
    assert detector.evidence["chart"] == "mean-up"
    assert 0.3 < detector.evidence["shift_sigmas"] < 1.0
