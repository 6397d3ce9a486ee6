"""What the seasonal-detector tests share: traffic time, one value every 20 s from a
Monday, the days on which ``seasonal-cusum`` reports, with the chart that fired, and the
same for the five features of one model."""

from __future__ import annotations

import math
import random

from detectors import SeasonalCUSUM
from detectors.drift.model_day import ModelDay

START = 1_767_571_200  # Monday 2026-01-05 00:00 UTC
DAY = 4320  # one value every 20 s


def findings(values: list[tuple[float, float]]) -> list[tuple[int, str]]:
    """(day, chart) of each detection over ``(time, value)`` pairs fed in order."""
    detector = SeasonalCUSUM()
    found = []
    for i, (at, x) in enumerate(values):
        detector.update(x, at)
        if detector.drift_detected:
            found.append((i // DAY, detector.evidence["chart"]))
    return found


def model_traffic(
    seed: int, holiday: int, moving: range | set[int], gap: float, phi: float, days: int
) -> list[tuple[float, list[float]]]:
    """Five features of one model, one event every 20 s from a Monday: feature ``k`` at level
    ``k``, ``gap`` sd higher on weekends and, for the features in ``moving``, on day ``holiday``;
    AR(1) noise (``phi``) of unit variance."""
    rng = random.Random(seed)
    noise = [rng.gauss(0.0, 1.0) for _ in range(5)]
    scale = math.sqrt(1.0 - phi * phi)
    out = []
    for i in range(days * DAY):
        day = i // DAY
        row = []
        for k in range(5):
            noise[k] = phi * noise[k] + scale * rng.gauss(0.0, 1.0)
            weekend = day % 7 >= 5 or (day == holiday and k in moving)
            row.append(k + gap * weekend + noise[k])
        out.append((START + 20.0 * i, row))
    return out


def model_findings(
    events: list[tuple[float, list[float]]], detectors: list[SeasonalCUSUM] | None = None
) -> list[tuple[int, int, str]]:
    """(day, feature, chart) of each detection of one model's features fed event by event, the
    detectors sharing the model's holiday judgement as the monitors build them (fresh ones
    unless ``detectors`` are given)."""
    if detectors is None:
        detectors = [SeasonalCUSUM() for _ in range(5)]
    day = ModelDay()
    for detector in detectors:
        day.join(detector)
    found = []
    for i, (at, row) in enumerate(events):
        for k, detector in enumerate(detectors):
            detector.update(row[k], at)
            if detector.drift_detected:
                found.append((i // DAY, k, detector.evidence["chart"]))
    return found
