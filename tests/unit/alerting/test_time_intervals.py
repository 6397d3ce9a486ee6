"""alerting.time_intervals and routes muted by them, as Alertmanager's time_intervals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from alerting.config import ConfigError, parse_config
from alerting.time_intervals import TimeSpec
from tests.clock import FakeClock
from tests.factories import finding
from tests.unit.alerting.test_dispatcher import Harness

SATURDAY_NOON = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("raw", "moment", "expected"),
    [
        ({"times": [{"start_time": "09:00", "end_time": "17:00"}]}, SATURDAY_NOON, True),
        ({"times": [{"start_time": "13:00", "end_time": "24:00"}]}, SATURDAY_NOON, False),
        ({"weekdays": ["monday:friday"]}, SATURDAY_NOON, False),
        ({"weekdays": ["saturday"], "months": ["december"]}, SATURDAY_NOON, True),
        ({"days_of_month": ["-1"]}, datetime(2026, 2, 28, tzinfo=UTC), True),
        ({"days_of_month": ["-1"]}, datetime(2026, 2, 27, tzinfo=UTC), False),
        ({"years": ["2027:2030"]}, SATURDAY_NOON, False),
        (
            {"times": [{"start_time": "20:00", "end_time": "24:00"}], "location": "Asia/Tokyo"},
            SATURDAY_NOON,
            True,
        ),
    ],
)
def test_a_spec_matches_when_every_field_it_sets_matches(raw: dict, moment: datetime, expected: bool) -> None:
    assert TimeSpec.parse(raw).matches(moment) is expected


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ({"weekdays": ["funday"]}, "not a weekday"),
        ({"times": [{"start_time": "18:00", "end_time": "09:00"}]}, "not before"),
        ({"location": "Mars/Olympus"}, "not a known time zone"),
        ({"hours": ["1"]}, "unknown time interval field"),
    ],
)
def test_bad_specs_say_what_is_wrong(raw: dict, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        TimeSpec.parse(raw)


def config(mute: list[str], intervals: list[dict]) -> dict:
    return {
        "global": {"resolve_timeout": "2d"},
        "receivers": [{"name": "ml"}, {"name": "pager"}],
        "time_intervals": [{"name": "weekend", "time_intervals": intervals}],
        "route": {
            "receiver": "ml",
            "group_wait": "10s",
            "group_interval": "1m",
            "repeat_interval": "2d",
            "routes": [{"receiver": "pager", "matchers": ["severity=high"], "mute_time_intervals": mute}],
        },
    }


def test_a_muted_route_sends_nothing_then_everything_when_the_mute_ends(clock: FakeClock) -> None:
    # Noon of the next day, whenever the test runs: the mute of "today" outlasts the first ten minutes.
    noon = (clock.wall() + timedelta(days=1)).replace(hour=12, minute=0, second=0, microsecond=0)
    clock.advance((noon - clock.wall()).total_seconds())
    today = clock.wall().strftime("%A").lower()
    h = Harness(clock, config(["weekend"], [{"weekdays": [today]}]))
    h.feed(finding(severity="high"), finding(severity="high"))
    assert h.run(10 * 60) == []
    sent = h.run(24 * 3600, step=60)  # the day ends: the mute with it
    assert [(n.kind, n.receiver, n.alerts[0].occurrences) for n in sent] == [("firing", "pager", 2)]


def test_unknown_interval_names_and_a_muted_root_are_refused() -> None:
    with pytest.raises(ConfigError, match="time interval 'weekends' is not defined"):
        parse_config(config(["weekends"], [{"weekdays": ["saturday"]}]))
    document = config([], [{"weekdays": ["saturday"]}])
    document["route"]["mute_time_intervals"] = ["weekend"]
    with pytest.raises(ConfigError, match="top-level route cannot be muted"):
        parse_config(document)
