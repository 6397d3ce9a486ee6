"""Named time intervals, as Alertmanager's ``time_intervals``: when a route may notify.

A named interval is a list of specs; it is in force when any spec matches. A spec
matches when every field it sets matches (a field left out matches always):
``times`` (``start_time``/``end_time`` as ``HH:MM``, end exclusive, up to ``24:00``),
``weekdays`` (``monday`` or ``monday:friday``), ``days_of_month`` (``1``, ``1:5``,
``-1`` for the last day), ``months`` (``january`` or ``1``, ranges with ``:``),
``years`` (``2026`` or ``2026:2027``), read in ``location`` (an IANA zone, UTC by
default). Routes name intervals in ``mute_time_intervals`` (no notifications while
one is in force) and ``active_time_intervals`` (notifications only then); the groups
keep counting meanwhile and the next notification outside the mute says it all.

>>> spec = TimeSpec.parse({"weekdays": ["saturday:sunday"]})
>>> from datetime import UTC, datetime
>>> spec.matches(datetime(2026, 12, 5, 12, tzinfo=UTC)), spec.matches(datetime(2026, 12, 7, 12, tzinfo=UTC))
(True, False)
"""

from __future__ import annotations

import calendar
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

WEEKDAYS = {name.lower(): index for index, name in enumerate(calendar.day_name)}
MONTHS = {name.lower(): index for index, name in enumerate(calendar.month_name) if name}

Range = tuple[int, int]


def _clock_minutes(text: object) -> int:
    hours, _, minutes = str(text).partition(":")
    if not (hours.isdigit() and minutes.isdigit() and len(minutes) == 2):
        raise ValueError(f"{text!r} is not a time of day (HH:MM)")
    value = int(hours) * 60 + int(minutes)
    if int(minutes) >= 60 or value > 24 * 60:
        raise ValueError(f"{text!r} is not a time of day between 00:00 and 24:00")
    return value


def _ranges(
    values: Sequence[object], names: Mapping[str, int], low: int, high: int, what: str
) -> tuple[Range, ...]:
    """``a`` or ``a:b`` items, by name or number, each end within ``low``..``high``."""
    found = []
    for value in values:
        ends = []
        for part in str(value).split(":", 1):
            token = part.strip().lower()
            number = names.get(token)
            if number is None:
                try:
                    number = int(token)
                except ValueError:
                    raise ValueError(f"{value!r} is not a {what} or a range of them") from None
            if not low <= number <= high or (number == 0 and low < 0):
                raise ValueError(f"{value!r}: {what} out of range")
            ends.append(number)
        found.append((ends[0], ends[-1]))
    return tuple(found)


@dataclass(frozen=True)
class TimeSpec:
    times: tuple[Range, ...] = ()
    weekdays: tuple[Range, ...] = ()
    days_of_month: tuple[Range, ...] = ()
    months: tuple[Range, ...] = ()
    years: tuple[Range, ...] = ()
    location: str = "UTC"

    @classmethod
    def parse(cls, raw: Mapping[str, object]) -> TimeSpec:
        unknown = set(raw) - {"times", "weekdays", "days_of_month", "months", "years", "location"}
        if unknown:
            raise ValueError(f"unknown time interval field(s): {', '.join(sorted(unknown))}")

        def listed(name: str) -> Sequence[object]:
            value = raw.get(name) or []
            if not isinstance(value, list | tuple):
                raise ValueError(f"{name} must be a list")
            return value

        times = []
        for item in listed("times"):
            if not isinstance(item, Mapping):
                raise ValueError("times: each entry has start_time and end_time")
            start, end = _clock_minutes(item.get("start_time")), _clock_minutes(item.get("end_time"))
            if start >= end:
                raise ValueError(f"times: {item.get('start_time')} is not before {item.get('end_time')}")
            times.append((start, end))
        location = str(raw.get("location") or "UTC")
        try:
            ZoneInfo(location)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"location {location!r} is not a known time zone") from None
        return cls(
            times=tuple(times),
            weekdays=_ranges(listed("weekdays"), WEEKDAYS, 0, 6, "weekday"),
            days_of_month=_ranges(listed("days_of_month"), {}, -31, 31, "day of the month"),
            months=_ranges(listed("months"), MONTHS, 1, 12, "month"),
            years=_ranges(listed("years"), {}, 1, 9999, "year"),
            location=location,
        )

    def matches(self, moment: datetime) -> bool:
        local = moment.astimezone(ZoneInfo(self.location))
        minute = local.hour * 60 + local.minute
        if self.times and not any(start <= minute < end for start, end in self.times):
            return False
        if self.weekdays and not _within(local.weekday(), self.weekdays):
            return False
        if self.days_of_month and not self._day_matches(local):
            return False
        if self.months and not _within(local.month, self.months):
            return False
        return not self.years or _within(local.year, self.years)

    def _day_matches(self, local: datetime) -> bool:
        last = calendar.monthrange(local.year, local.month)[1]
        for start, end in self.days_of_month:
            first = start if start > 0 else last + start + 1
            final = end if end > 0 else last + end + 1
            if first <= local.day <= final:
                return True
        return False


def _within(value: int, ranges: tuple[Range, ...]) -> bool:
    return any(start <= value <= end for start, end in ranges)


@dataclass(frozen=True)
class TimeInterval:
    name: str
    specs: tuple[TimeSpec, ...]

    def active(self, moment: datetime) -> bool:
        return any(spec.matches(moment) for spec in self.specs)
