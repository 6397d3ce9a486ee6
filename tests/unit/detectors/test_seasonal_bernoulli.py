"""Error rates that follow the clock: a rise by half is found, the daily cycle is not."""

from __future__ import annotations

import math
import random

from detectors import BernoulliCUSUM, SeasonalBernoulliCUSUM
from detectors.base import DriftDetector
from detectors.monitors.describe import change

START = 1_767_571_200  # Monday 2026-01-05 00:00 UTC
DAY = 4320  # labels per day, one every 20 s


def labels(days: int, seed: int, rise: tuple[int, int] | None = None) -> list[tuple[float, bool]]:
    """An error rate of 10% +-30% over the day; ``rise``: labels [start, end) at 1.5 x."""
    rng = random.Random(seed)
    out = []
    for i in range(days * DAY):
        at = START + 20 * i
        rate = 0.1 * (1.0 + 0.3 * math.sin(2 * math.pi * ((at % 86_400) / 3600 - 8) / 24))
        if rise and rise[0] <= i < rise[1]:
            rate *= 1.5
        out.append((at, rng.random() < rate))
    return out


def detections(detector: DriftDetector, stream: list[tuple[float, bool]]) -> list[int]:
    found = []
    for i, (at, error) in enumerate(stream):
        detector.update(error, at)
        if detector.drift_detected:
            found.append(i)
    return found


def test_the_daily_cycle_of_an_error_rate_is_not_a_change() -> None:
    stream = labels(14, seed=1)
    assert detections(SeasonalBernoulliCUSUM(), stream) == []
    # the contrast: a reference frozen from the first labels (night hours) takes the day for a rise
    assert detections(BernoulliCUSUM(), stream)


def test_a_rise_by_half_on_top_of_the_cycle_is_found_and_described_against_the_usual_rate() -> None:
    start = 9 * DAY + 1_500  # a Wednesday, 08:20
    detector = SeasonalBernoulliCUSUM()
    found = detections(detector, labels(10, seed=2, rise=(start, start + 1_080)))
    assert len(found) == 1
    assert start < found[0] < start + 1_080
    evidence = detector.evidence
    assert evidence["chart"] == "rate-up"
    assert 1.2 < evidence["rate_ratio"] < 2.5
    assert evidence["expected"]["when"].startswith("Wednesday ")
    phrase, magnitude = change(evidence)
    assert f"usual for {evidence['expected']['when']}" in phrase
    assert magnitude["rate_before"] == evidence["reference"]["rate"]


def test_one_change_is_one_finding_and_its_end_is_accepted_silently() -> None:
    start = 8 * DAY
    detector = SeasonalBernoulliCUSUM()
    found = detections(detector, labels(14, seed=3, rise=(start, start + 2 * DAY)))
    assert len(found) == 1
    assert start < found[0] < start + DAY


def test_a_fall_is_reported_only_when_asked_for() -> None:
    def falling(seed: int) -> list[tuple[float, bool]]:
        rng = random.Random(seed)
        return [(START + 20 * i, rng.random() < (0.05 if i >= 3 * DAY else 0.1)) for i in range(5 * DAY)]

    assert detections(SeasonalBernoulliCUSUM(seasonality="daily"), falling(4)) == []
    detector = SeasonalBernoulliCUSUM(seasonality="daily", ratio_down=2.0)
    assert len(detections(detector, falling(4))) == 1
    assert detector.evidence["chart"] == "rate-down"
