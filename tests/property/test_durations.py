"""schemas.durations: one grammar, compact or ISO 8601, that never fails except with ValueError."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st

from schemas.durations import duration_seconds, parse_duration

_COMPACT_UNITS = ("w", "d", "h", "m", "s")
_ISO_DATE_UNITS = ("W", "D")
_ISO_TIME_UNITS = ("H", "M", "S")
_SECONDS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}

amounts = st.fixed_dictionaries({u: st.none() | st.integers(0, 10_000) for u in _COMPACT_UNITS}).filter(
    lambda parts: any(v is not None for v in parts.values())
)


def compact(parts: dict[str, int | None]) -> str:
    return "".join(f"{parts[u]}{u}" for u in _COMPACT_UNITS if parts[u] is not None)


def iso(parts: dict[str, int | None]) -> str:
    date = "".join(f"{parts[u.lower()]}{u}" for u in _ISO_DATE_UNITS if parts[u.lower()] is not None)
    time = "".join(f"{parts[u.lower()]}{u}" for u in _ISO_TIME_UNITS if parts[u.lower()] is not None)
    return f"P{date}" + (f"T{time}" if time else "")


def expected(parts: dict[str, int | None]) -> timedelta:
    return timedelta(seconds=sum(_SECONDS[u] * n for u, n in parts.items() if n is not None))


@given(amounts)
def test_compact_and_iso_spellings_name_the_same_duration(parts: dict[str, int | None]) -> None:
    assert parse_duration(compact(parts)) == expected(parts)
    assert parse_duration(iso(parts)) == expected(parts)
    assert parse_duration(iso(parts).lower()) == expected(parts)


@given(st.text(max_size=40))
def test_any_text_is_a_duration_or_a_value_error_that_shows_examples(text: str) -> None:
    try:
        parsed, problem = parse_duration(text), ""
    except ValueError as error:
        parsed, problem = timedelta(0), str(error)
    assert parsed >= timedelta(0)
    assert not problem or "duration" in problem


@given(st.floats(min_value=0, max_value=1e9, allow_nan=False))
def test_numbers_are_seconds(seconds: float) -> None:
    assert duration_seconds(seconds) == seconds
