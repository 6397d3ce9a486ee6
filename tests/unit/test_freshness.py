"""identity.freshness: replays (an event id again, elsewhere in the log) and stale events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from identity.freshness import ReplayGuard, is_stale

T0 = datetime(2026, 3, 4, 10, 0, tzinfo=UTC)
HERE = ("ai.inference", 0, 100)


def test_first_sighting_is_not_a_replay() -> None:
    guard = ReplayGuard()
    assert guard.check("e1", HERE, T0) is False
    assert guard.check("e2", ("ai.inference", 0, 101), T0) is False


def test_redelivery_at_the_same_position_is_not_a_replay() -> None:
    """At-least-once delivery hands the same message over again after a crash."""
    guard = ReplayGuard()
    for _ in range(3):
        assert guard.check("e1", HERE, T0) is False


@pytest.mark.parametrize(
    "elsewhere",
    [("ai.inference", 0, 101), ("ai.inference", 3, 100), ("ai.access", 0, 100)],
    ids=["other-offset", "other-partition", "other-topic"],
)
def test_same_event_id_elsewhere_in_the_log_is_a_replay(elsewhere: tuple[str, int, int]) -> None:
    guard = ReplayGuard()
    guard.check("e1", HERE, T0)
    assert guard.check("e1", elsewhere, T0) is True


def test_a_replay_does_not_displace_the_original() -> None:
    guard = ReplayGuard()
    guard.check("e1", HERE, T0)
    assert guard.check("e1", ("ai.inference", 0, 500), T0) is True
    # the original is still the original, the copy is still a copy
    assert guard.check("e1", HERE, T0) is False
    assert guard.check("e1", ("ai.inference", 0, 500), T0) is True


def test_replay_is_remembered_for_the_window_then_forgotten() -> None:
    guard = ReplayGuard(window=timedelta(hours=1))
    guard.check("e1", HERE, T0)
    # another event an hour later (event time) keeps e1 exactly at the horizon
    guard.check("e2", ("ai.inference", 0, 101), T0 + timedelta(hours=1))
    assert guard.check("e1", ("ai.inference", 0, 900), T0) is True
    # once event time moves past the window, e1 is forgotten
    guard.check("e3", ("ai.inference", 0, 102), T0 + timedelta(hours=1, seconds=1))
    assert guard.check("e1", ("ai.inference", 0, 901), T0) is False


def test_max_entries_bounds_memory_oldest_forgotten_first() -> None:
    guard = ReplayGuard(max_entries=3)
    for n, event_id in enumerate(("a", "b", "c", "d")):
        guard.check(event_id, ("t", 0, n), T0)
    assert guard.check("a", ("t", 0, 99), T0) is False  # forgotten
    assert guard.check("d", ("t", 0, 98), T0) is True  # remembered
    assert guard.check("c", ("t", 0, 97), T0) is True


def test_many_distinct_events_stay_within_the_bound() -> None:
    guard = ReplayGuard(max_entries=1_000)
    for n in range(5_000):
        guard.check(f"e{n}", ("t", 0, n), T0 + timedelta(milliseconds=n))
    assert len(guard._seen) == 1_000
    assert guard.check("e4999", ("t", 1, 0), T0 + timedelta(seconds=5)) is True
    assert guard.check("e0", ("t", 1, 1), T0 + timedelta(seconds=5)) is False


# --- stale --------------------------------------------------------------------------------

SKEW = timedelta(minutes=5)


@pytest.mark.parametrize(
    ("event_minus_arrival", "stale"),
    [
        (timedelta(0), False),
        (timedelta(minutes=4, seconds=59), False),
        (timedelta(minutes=-4, seconds=-59), False),
        (SKEW, False),  # the limit itself is allowed
        (-SKEW, False),
        (SKEW + timedelta(microseconds=1), True),
        (timedelta(hours=2), True),  # from the future
        (timedelta(hours=-2), True),  # captured and sent again later
    ],
)
def test_stale_in_both_directions(event_minus_arrival: timedelta, stale: bool) -> None:
    arrival = T0
    assert is_stale(arrival + event_minus_arrival, arrival, SKEW) is stale


def test_stale_compares_instants_across_time_zones() -> None:
    berlin = datetime.fromisoformat("2026-03-04T11:02:00+01:00")  # 10:02 UTC
    assert is_stale(berlin, T0, SKEW) is False
    assert is_stale(berlin, T0 - timedelta(minutes=4), SKEW) is True


def test_without_an_arrival_time_nothing_is_stale() -> None:
    assert is_stale(T0 - timedelta(days=365), None, SKEW) is False
