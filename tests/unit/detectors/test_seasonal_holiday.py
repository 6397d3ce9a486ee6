"""A weekday that looks like a weekend (a holiday) is not a change; a real change still is, and one
feature of a model moving alone is a change of that feature, not a holiday."""

from __future__ import annotations

import random

import orjson

from detectors import SeasonalCUSUM
from detectors.state import dumps, record, restore
from tests.unit.detectors.seasonal_traffic import DAY, START, findings, model_findings, model_traffic

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


# One model's five features, weekends 0.5 sd higher, noise AR(1) with phi 0.9 (an hour of values
# holds ~10 independent ones): one stream alone cannot tell the holiday from a change early in the
# day, and reported it on three features; together they can.
MODEL_HOLIDAY = 9  # the Wednesday of the second week


def test_a_model_whose_features_all_take_their_weekend_level_on_a_wednesday_has_no_finding() -> None:
    events = model_traffic(seed=1, holiday=MODEL_HOLIDAY, moving=range(5), gap=0.5, phi=0.9, days=10)
    assert model_findings(events) == []


def test_one_feature_taking_its_weekend_level_on_a_wednesday_is_a_change_of_that_feature() -> None:
    events = model_traffic(seed=1, holiday=MODEL_HOLIDAY, moving={2}, gap=1.0, phi=0.0, days=10)
    assert model_findings(events) == [(MODEL_HOLIDAY, 2, "mean-up")]


def test_the_models_holiday_judgement_survives_a_restore_of_its_detectors_mid_holiday() -> None:
    events = model_traffic(seed=1, holiday=MODEL_HOLIDAY, moving=range(5), gap=0.5, phi=0.9, days=10)
    split = MODEL_HOLIDAY * DAY + 1_000  # 05:33 on the holiday, after it was judged one
    detectors = [SeasonalCUSUM() for _ in range(5)]
    assert model_findings(events[:split], detectors) == []
    assert START // 86_400 + MODEL_HOLIDAY in {detector.day_off for detector in detectors}
    restored = [restore(orjson.loads(dumps(record(detector)))) for detector in detectors]
    assert model_findings(events[split:], restored) == []  # type: ignore[arg-type]
