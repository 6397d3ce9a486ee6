"""Alerts printed for a person at a terminal: one line each, severity first."""

from __future__ import annotations

import sys
from typing import TextIO

from schemas.records import AlertRow

_COLOURS = {"critical": "\033[1;31m", "high": "\033[31m", "medium": "\033[33m"}


class ConsoleNotifier:
    def __init__(self, stream: TextIO = sys.stdout, colour: bool | None = None) -> None:
        self.stream = stream
        self.colour = stream.isatty() if colour is None else colour

    def notify(self, alert: AlertRow) -> None:
        label = f"{alert.severity.upper():8}"
        if self.colour and alert.severity in _COLOURS:
            label = f"{_COLOURS[alert.severity]}{label}\033[0m"
        folded = f" (+{alert.occurrences - 1} folded)" if alert.occurrences > 1 else ""
        print(f"ALERT {label} {alert.summary}{folded}", file=self.stream, flush=True)
