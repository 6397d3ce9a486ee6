"""schemas.durations: what the CLI and the routing file accept as a duration."""

from __future__ import annotations

from datetime import timedelta

import pytest

from schemas.durations import duration_seconds, parse_duration


@pytest.mark.parametrize(
    ("text", "duration"),
    [
        ("30s", timedelta(seconds=30)),
        ("5m", timedelta(minutes=5)),
        ("1h30m", timedelta(minutes=90)),
        ("7d", timedelta(days=7)),
        ("2w", timedelta(weeks=2)),
        ("1.5h", timedelta(minutes=90)),
        ("250ms", timedelta(milliseconds=250)),
        ("PT1H30M", timedelta(minutes=90)),
        ("P2W", timedelta(weeks=2)),
        ("P1DT12H", timedelta(hours=36)),
        (" 24h ", timedelta(days=1)),
    ],
)
def test_durations(text: str, duration: timedelta) -> None:
    assert parse_duration(text) == duration


@pytest.mark.parametrize("text", ["", "5 minutes", "m5", "-5s", "5s3", "1m1h", "1h 30m", "P", "PT", "P1DT"])
def test_bad_durations_show_examples(text: str) -> None:
    with pytest.raises(ValueError, match="examples: 30s, 5m, 1h30m, 7d, 2w"):
        parse_duration(text)


@pytest.mark.parametrize("text", ["P1Y", "P3M", "P1Y2M"])
def test_calendar_units_are_refused_with_the_reason(text: str) -> None:
    with pytest.raises(ValueError, match="years and months vary in length"):
        parse_duration(text)


@pytest.mark.parametrize("value", [True, None, -1, [5]])
def test_configuration_values_that_are_not_durations(value: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        duration_seconds(value)
