"""identity.freshness: replays (an event id again, elsewhere in the log) and stale events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from identity.freshness import BUCKETS, SEAL_AT, SEALED_BYTES_PER_ID, ReplayGuard, is_stale

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
    window = timedelta(hours=1)
    guard = ReplayGuard(window=window)
    guard.check("e1", HERE, T0)
    # another event an hour later (event time) keeps e1 exactly at the horizon
    guard.check("e2", ("ai.inference", 0, 101), T0 + window)
    assert guard.check("e1", ("ai.inference", 0, 900), T0) is True
    # once event time is a window and one bucket (1/64 of it) past e1, e1 is forgotten
    guard.check("e3", ("ai.inference", 0, 102), T0 + window + window / BUCKETS)
    assert guard.check("e1", ("ai.inference", 0, 901), T0) is False


def test_the_whole_window_is_covered_at_any_rate() -> None:
    """No count limit: 300 s of 1,000 events/s are all remembered (the old cap forgot them)."""
    guard = ReplayGuard(window=timedelta(seconds=300))
    batch = 2000
    for start in range(0, 300_000, batch):
        guard.check_many(
            [(f"e{n}", ("t", 0, n), T0 + timedelta(milliseconds=n)) for n in range(start, start + batch)]
        )
    assert len(guard) == 300_000
    at_the_end = T0 + timedelta(seconds=300)
    assert guard.check_many([("e0", ("t", 1, 0), at_the_end), ("e299999", ("t", 1, 1), at_the_end)]) == [
        True,
        True,
    ]
    assert guard.nbytes() < 300_000 * SEALED_BYTES_PER_ID + 4 * 2**20  # sealed ids + one open dict


def test_a_batch_sees_its_own_earlier_events() -> None:
    guard = ReplayGuard()
    events = [("a", ("t", 0, 1), T0), ("a", ("t", 0, 1), T0), ("a", ("t", 0, 2), T0), ("b", ("t", 0, 3), T0)]
    assert guard.check_many(events) == [False, False, True, False]


def test_sealed_and_new_ids_are_found_alike() -> None:
    guard = ReplayGuard()
    guard.check_many([(f"e{n}", ("t", 0, n), T0) for n in range(SEAL_AT + 10)])  # seals the first bucket
    assert guard.check_many([("e1", ("t", 0, 1), T0), ("e1", ("t", 9, 1), T0)]) == [False, True]
    assert guard.check("e3", ("t", 0, 3), T0 + timedelta(minutes=1)) is False  # redelivery
    assert guard.check("e3", ("t", 0, SEAL_AT + 10), T0 + timedelta(minutes=1)) is True


def test_a_redelivered_replay_is_still_a_replay_after_sealing() -> None:
    """A crash between judging a replay and committing its offset hands it over again."""
    guard = ReplayGuard()
    guard.check("e1", HERE, T0)
    assert guard.check("e1", ("ai.inference", 0, 101), T0) is True
    guard.check_many([(f"e{n}", ("t", 0, n), T0) for n in range(2, SEAL_AT + 2)])  # seals both
    assert guard.check("e1", ("ai.inference", 0, 101), T0) is True
    assert guard.check("e1", HERE, T0) is False


def test_a_message_judged_first_on_redelivery_is_remembered() -> None:
    """Below the judged offset but never checked (refused the first time, say, before its
    key was added): it is the first sighting of its id, and a later copy is a replay."""
    guard = ReplayGuard()
    guard.check("e5", ("ai.inference", 0, 105), T0)
    assert guard.check("e2", ("ai.inference", 0, 102), T0) is False
    assert guard.check("e2", ("ai.inference", 0, 106), T0) is True


def test_over_the_byte_budget_the_oldest_bucket_goes_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    guard = ReplayGuard(window=timedelta(hours=1), max_bytes=2**20)
    step = timedelta(hours=1) / BUCKETS
    buckets = 2**20 // (SEAL_AT * SEALED_BYTES_PER_ID) + 4  # four more than the budget holds
    for bucket in range(buckets):
        ts = T0 + step * bucket
        guard.check_many([(f"b{bucket}-{n}", ("t", 0, bucket * SEAL_AT + n), ts) for n in range(SEAL_AT)])
    assert guard.nbytes() <= 2**20
    at_the_end = T0 + step * buckets
    assert guard.check("b0-1", ("t", 5, 1), at_the_end) is False  # forgotten early...
    assert "replay window is shorter" in caplog.text  # ...and never silently
    assert guard.check(f"b{buckets - 1}-1", ("t", 5, 2), at_the_end) is True


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
