"""What the seasonal-detector tests share: traffic time, one value every 20 s from a
Monday, and the days on which ``seasonal-cusum`` reports, with the chart that fired."""

from __future__ import annotations

from detectors import SeasonalCUSUM

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
