"""A weekday that looks like a weekend (a holiday) is not a change; a real change still is."""

from __future__ import annotations

import random

from tests.unit.detectors.seasonal_traffic import DAY, START, findings

HOLIDAY = 16  # the Wednesday of the third week


def stream(seed: int, shift_from: int | None = None) -> list[tuple[float, float]]:
    """Weekends 1 sd above weekdays; the holiday too; ``shift_from``: +2 sd from that value on."""
    rng = random.Random(seed)
    out = []
    for i in range(17 * DAY):
        day = i // DAY
        level = 1.0 if day % 7 >= 5 or day == HOLIDAY else 0.0
        if shift_from is not None and i >= shift_from:
            level += 2.0
        out.append((START + 20.0 * i, rng.gauss(level, 1.0)))
    return out


def test_a_holiday_that_looks_like_a_sunday_is_judged_as_one() -> None:
    assert [day for day, _ in findings(stream(seed=5))] == []


def test_a_change_unlike_the_weekend_on_a_weekday_is_still_found() -> None:
    assert findings(stream(seed=6, shift_from=15 * DAY + 2_000))[:1] == [(15, "mean-up")]
