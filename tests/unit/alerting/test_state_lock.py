"""alerting.state.StateLock: one alert manager per state directory, freed when its holder dies."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from alerting.state import StateLock, StateLockedError

HOLD = """
import pathlib, sys, time
from alerting.state import StateLock
StateLock(pathlib.Path(sys.argv[1])).acquire()
print("held", flush=True)
time.sleep(60)
"""


def test_a_second_holder_is_refused_until_the_first_is_killed(tmp_path: Path) -> None:
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(StateLockedError, match="in use by a running notifier"):
            StateLock(tmp_path).acquire()
    finally:
        holder.kill()  # SIGKILL: no chance to release it
        holder.wait()
    lock = StateLock(tmp_path)
    lock.acquire()
    lock.release()
