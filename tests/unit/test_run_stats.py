"""streams.local.RunStats: the counts `vigil run` prints match what the tables hold."""

from __future__ import annotations

from alerting import AlertGate
from streams.local import RunStats
from tests.clock import FakeClock
from tests.factories import finding
from vigil.pipeline import BatchResult


def test_an_alert_recurring_in_three_batches_is_counted_once(clock: FakeClock) -> None:
    gate = AlertGate(clock=clock, wall_clock=clock.wall)
    stats = RunStats()
    for _ in range(3):
        stats.add(BatchResult(alerts=gate.admit([finding(rule="export-needs-mfa")])))
    stats.add(BatchResult(alerts=gate.admit([finding(rule="fine-tune-needs-approval")])))
    assert stats.alerts == 2  # alerts_unique has two rows; alerts has four versions
