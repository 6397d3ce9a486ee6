"""Stand-in recorder processes: each behaves as a real recorder may, without a store.

They run in spawned processes, so they live in a module of their own that imports
little (the child imports it to find them).
"""

from __future__ import annotations

import sys
import time
from multiprocessing.connection import Connection

from api.recorder_process import Counter
from vigil.settings import Settings


def drains_when_told(settings: Settings, channel: Connection, stored: Counter) -> None:
    channel.send(None)
    channel.poll(None)  # the API process's word to stop
    stored.value += 7
    sys.exit(0)


def dies_once_started(settings: Settings, channel: Connection, stored: Counter) -> None:
    channel.send(None)
    sys.exit(3)


def cannot_open_the_store(settings: Settings, channel: Connection, stored: Counter) -> None:
    channel.send(PermissionError("the store directory is not writable"))
    sys.exit(1)


def never_finishes(settings: Settings, channel: Connection, stored: Counter) -> None:
    channel.send(None)
    while True:
        time.sleep(1)
