"""Alert notifications printed for a person at a terminal: one line per alert, severity first.

A group's first notification prints each of its alerts; later ones print only
what changed (alerts that joined or resolved, reminders) with the occurrences
folded since. Count-only updates print nothing: the terminal is not a place for
a counter ticking up.
"""

from __future__ import annotations

import sys
from typing import TextIO

from alerting.dispatcher import Ack
from alerting.notifications import AlertSnapshot, Notification
from sinks.text import printable

_COLOURS = {"critical": "\033[1;31m", "high": "\033[31m", "medium": "\033[33m"}


class ConsoleReceiver:
    def __init__(
        self, name: str = "console", stream: TextIO | None = None, colour: bool | None = None
    ) -> None:
        self.name = name
        self.stream = stream if stream is not None else sys.stdout
        self.colour = self.stream.isatty() if colour is None else colour

    def deliver(self, notification: Notification) -> None:
        for line in self.lines(notification):
            print(line, file=self.stream, flush=True)

    def lines(self, notification: Notification) -> list[str]:
        kind = notification.kind
        if kind == "update":
            return []
        lines = []
        for alert in notification.alerts:
            summary = printable(alert.summary)  # publisher text: no escape sequence reaches the terminal
            if alert.state == "resolved":
                lines.append(f"RESOLVED {self._label(alert)} {summary} ({alert.occurrences} in all)")
            elif kind == "firing" or alert.joined:
                lines.append(f"ALERT {self._label(alert)} {summary}{_folded(alert.occurrences)}")
            elif kind == "repeat" and alert.state == "firing":
                lines.append(f"STILL FIRING {self._label(alert)} {summary} ({alert.occurrences} so far)")
        return lines

    def _label(self, alert: AlertSnapshot) -> str:
        label = f"{alert.severity.upper():8}"
        if self.colour and alert.severity in _COLOURS:
            label = f"{_COLOURS[alert.severity]}{label}\033[0m"
        return label

    def poll(self) -> list[Ack]:
        return []

    def close(self) -> None:
        self.stream.flush()


def _folded(occurrences: int) -> str:
    return f" (+{occurrences - 1} folded)" if occurrences > 1 else ""
