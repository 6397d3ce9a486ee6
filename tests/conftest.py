"""Suite-wide settings.

Property tests run derandomized by default, so a CI run is reproducible: the same
examples every time (``HYPOTHESIS_PROFILE=explore`` searches afresh, for local runs).
Time comes from one clock (``tests.clock``); ``VIGIL_TEST_TIME_SHIFT_DAYS`` moves the
whole run that many days ahead (wall time only; monotonic time is untouched), so a
date that will lapse fails CI before it goes off.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import settings

from tests.clock import FakeClock, installed

settings.register_profile("deterministic", derandomize=True, deadline=None)
settings.register_profile("explore", deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "deterministic"))


def pytest_configure(config: pytest.Config) -> None:
    days = os.environ.get("VIGIL_TEST_TIME_SHIFT_DAYS")
    if days:
        import time_machine

        ahead = datetime.now(UTC) + timedelta(days=int(days))
        time_machine.travel(ahead, tick=True).start()  # for the whole run


@pytest.fixture
def clock() -> Iterator[FakeClock]:
    """A hand-moved clock that the factories stamp rows with while the test runs."""
    with installed(FakeClock()) as fake:
        yield fake
