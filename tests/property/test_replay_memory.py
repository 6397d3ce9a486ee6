"""identity.freshness.ReplayGuard against the rule it implements, on arbitrary logs.

The rule: a message is a replay when its event id was first delivered as another
message (another place in the log); redelivering any message, in any order, after
any number of seals, gives the answer its first delivery got.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from identity.freshness import ReplayGuard

T0 = datetime(2026, 3, 4, 10, 0, tzinfo=UTC)

# A log: per message, its partition and event id (few ids, so copies are common).
logs = st.lists(st.tuples(st.integers(0, 2), st.integers(0, 12)), min_size=1, max_size=60)


@settings(max_examples=300, deadline=None)
@given(log=logs, redeliveries=st.lists(st.integers(0, 59), max_size=30), batch=st.integers(1, 7))
def test_replays_and_redeliveries_follow_the_rule(
    log: list[tuple[int, int]], redeliveries: list[int], batch: int
) -> None:
    offsets: dict[int, int] = {}
    messages = []
    for partition, event in log:
        offsets[partition] = offsets.get(partition, -1) + 1
        messages.append((f"e{event}", ("ai.inference", partition, offsets[partition]), T0))
    first_place: dict[str, tuple[str, int, int]] = {}
    for event_id, place, _ in messages:
        first_place.setdefault(event_id, place)
    expected = [first_place[event_id] != place for event_id, place, _ in messages]

    guard = ReplayGuard(window=timedelta(hours=1))
    judged = []
    for start in range(0, len(messages), batch):
        judged += guard.check_many(messages[start : start + batch])
    assert judged == expected
    guard._seal()  # what a busy guard does every SEAL_AT ids
    again = [n % len(messages) for n in redeliveries]
    assert guard.check_many([messages[n] for n in again]) == [expected[n] for n in again]
