"""How severe a finding or an alert is: five names in one order, defined once.

Severities travel as their names (rows, labels, routing files, policy annotations),
so the type is the set of names and the order is their position in
:data:`SEVERITIES`. Every stage that rates something and every part of alerting that
compares ratings uses these, so "at least high" means the same everywhere.

>>> highest(["low", "high", "medium"])
'high'
>>> severity_rank("critical") > severity_rank("high")
True
>>> parse_severity("urgent")
Traceback (most recent call last):
...
ValueError: unknown severity 'urgent'; expected one of info, low, medium, high, critical
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal, cast, get_args

Severity = Literal["info", "low", "medium", "high", "critical"]
SEVERITIES: tuple[Severity, ...] = get_args(Severity)
"""Lowest first."""
SEVERITY_RANK: dict[str, int] = {name: rank for rank, name in enumerate(SEVERITIES)}
DEFAULT_SEVERITY: Severity = "medium"


def parse_severity(value: object) -> Severity:
    """``value`` as a severity; anything else is a ValueError that lists the names."""
    if value not in SEVERITY_RANK:
        raise ValueError(f"unknown severity {value!r}; expected one of {', '.join(SEVERITIES)}")
    return cast(Severity, value)


def severity_rank(severity: str) -> int:
    """Rank of a severity; unknown names rank lowest rather than failing a batch."""
    return SEVERITY_RANK.get(severity, 0)


def highest(severities: Iterable[str], default: Severity = DEFAULT_SEVERITY) -> str:
    """The most severe of ``severities``; ``default`` when there are none."""
    return max(severities, key=severity_rank, default=default)
