"""A test rig: gate + alert manager + receivers against the local Slack, on a hand-moved clock.

Two rigs on the same ``state_dir`` and clock play a notifier and its successor
(a restart, or the standby taking over after the first was killed).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alerting import AlertGate, AlertingStore, AlertManager, ConfigSource, ManagerOptions, ReceiverContext
from alerting.config import parse_config
from schemas.records import FindingRow
from sinks.clickhouse import connect, migrate
from sinks.receivers import build_receiver
from tests.clock import FakeClock, current
from tests.slack_server import FakeSlack

TOKEN = "xoxb-never-print-me-123"


@contextmanager
def alerting_store(directory: Path) -> Iterator[AlertingStore]:
    """Alerting's tables in a fresh embedded store under ``directory``."""
    client = connect(f"chdb://{directory / 'clickhouse'}")
    migrate(client)
    yield AlertingStore.over_client(client)
    client.close()


def slack_config(**route: Any) -> dict[str, Any]:
    """Two Slack channels: high and critical page the SREs, the rest goes to the ML team."""
    return {
        "global": {"resolve_timeout": "5m"},
        "receivers": [
            {"name": "ml", "slack": {"channel": "#ml-alerts", "ack_poll_interval": "30s"}},
            {"name": "pager", "slack": {"channel": "#sre-page"}},
        ],
        "route": {
            "receiver": "ml",
            "group_by": ["stage", "rule", "model"],
            "group_wait": "5s",
            "group_interval": "1m",
            "repeat_interval": "4h",
            "routes": [{"matchers": ['severity=~"high|critical"'], "receiver": "pager"}],
            **route,
        },
        "inhibit_rules": [
            {
                "name": "quarantine-hides-drift",
                "source_matchers": ["rule=model-quarantined"],
                "target_matchers": ["stage=detector"],
                "equal": ["model"],
            }
        ],
    }


class Rig:
    def __init__(
        self,
        fake: FakeSlack,
        config: dict[str, Any] | None = None,
        store: AlertingStore | None = None,
        state_dir: Path | None = None,
        clock: FakeClock | None = None,
    ) -> None:
        self.clock = clock or current()
        parsed = parse_config(config or slack_config())
        context = ReceiverContext(
            slack_bot_token=TOKEN,
            slack_base_url=fake.base_url,
            clock=self.clock,
            sleep=self.clock.sleep,
            wall_clock=self.clock.wall,
        )
        options = ManagerOptions(state_dir=state_dir, refresh_interval=5.0)
        self.manager = AlertManager(
            ConfigSource(None, parsed),
            context,
            store,
            options,
            receiver_factory=build_receiver,
            threaded=False,
        )
        self.gate = AlertGate(
            resolve_timeout=parsed.global_.resolve_timeout, clock=self.clock, wall_clock=self.clock.wall
        )

    def feed(self, *findings: FindingRow, run: bool = True) -> None:
        for row in self.gate.admit(findings):
            self.manager.notify(row)
        if run:
            self.manager.run_once()

    def run(self, seconds: float, step: float = 1.0) -> None:
        end = self.clock.now + seconds
        while self.clock.now < end:
            self.clock.advance(min(step, end - self.clock.now))
            self.manager.run_once()
