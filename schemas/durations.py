"""The one duration grammar: command-line options, the routing file and ISO 8601 alike.

Accepted: a run of ``<number><unit>`` from largest to smallest unit, each unit at most
once (``30s``, ``5m``, ``1h30m``, ``7d``, ``2w``, ``1.5h``, ``250ms``), or an ISO 8601
duration (``PT1H30M``, ``P7D``, ``P2W``, ``P1DT12H``). Years and months are refused:
their length depends on the calendar. It lives in the contract layer because every
layer above (alerting's routing file, the CLI) reads durations the same way.
"""

from __future__ import annotations

import re
from datetime import timedelta

_NUMBER = r"\d+(?:\.\d+)?"
_UNIT_SECONDS = {"w": 604800.0, "d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_COMPACT = re.compile("".join(rf"(?:(?P<{u}>{_NUMBER}){u})?" for u in _UNIT_SECONDS))
_ISO = re.compile(
    rf"P(?:(?P<w>{_NUMBER})W)?(?:(?P<d>{_NUMBER})D)?"
    rf"(?:T(?=\d)(?:(?P<h>{_NUMBER})H)?(?:(?P<m>{_NUMBER})M)?(?:(?P<s>{_NUMBER})S)?)?",
    re.IGNORECASE,
)
EXAMPLES = "30s, 5m, 1h30m, 7d, 2w or ISO 8601 such as PT1H30M"


def parse_duration(text: str) -> timedelta:
    """The duration ``text`` names.

    >>> parse_duration("1h30m") == parse_duration("PT1H30M") == timedelta(minutes=90)
    True
    >>> parse_duration("2w")
    datetime.timedelta(days=14)
    """
    stripped = text.strip()
    found = _COMPACT.fullmatch(stripped) or _ISO.fullmatch(stripped)
    if not stripped or found is None or not any(found.groupdict().values()):
        hint = "; years and months vary in length, use days or weeks" if _calendar_units(stripped) else ""
        raise ValueError(f"{text!r} is not a duration (examples: {EXAMPLES}){hint}")
    total = sum(float(n) * _UNIT_SECONDS[u] for u, n in found.groupdict().items() if n is not None)
    try:
        return timedelta(seconds=total)
    except OverflowError:
        raise ValueError(f"{text!r} is too long a duration") from None


def duration_seconds(value: object) -> float:
    """Seconds from duration text, or from a number of seconds (configuration files).

    >>> duration_seconds("250ms"), duration_seconds(12)
    (0.25, 12.0)
    """
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"a duration is a number of seconds or text such as {EXAMPLES}")
    if isinstance(value, str):
        return parse_duration(value).total_seconds()
    if value < 0:
        raise ValueError("a duration cannot be negative")
    return float(value)


def _calendar_units(text: str) -> bool:
    return re.match(r"P(?:\d+Y|(?:\d+Y)?\d+M)", text, re.IGNORECASE) is not None
