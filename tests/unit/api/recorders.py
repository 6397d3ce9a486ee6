"""Stand-in recorder processes: each behaves as a real recorder may, without a store.

They run in spawned processes, so they live in a module of their own that imports
little (the child imports it to find them).
"""

from __future__ import annotations

import sys
import time
from multiprocessing.connection import Connection
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event

from vigil.settings import Settings


def drains_when_told(settings: Settings, ready: Connection, stop: Event, stored: Synchronized[int]) -> None:
    ready.send(None)
    stop.wait()
    stored.value += 7
    sys.exit(0)


def dies_once_started(settings: Settings, ready: Connection, stop: Event, stored: Synchronized[int]) -> None:
    ready.send(None)
    sys.exit(3)


def cannot_open_the_store(
    settings: Settings, ready: Connection, stop: Event, stored: Synchronized[int]
) -> None:
    ready.send(PermissionError("the store directory is not writable"))
    sys.exit(1)


def never_finishes(settings: Settings, ready: Connection, stop: Event, stored: Synchronized[int]) -> None:
    ready.send(None)
    while True:
        time.sleep(1)
