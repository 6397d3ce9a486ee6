"""vigil.fleet: benchmark traffic a healthy fleet would send, at a fleet's cardinality."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from streams.local import messages_from_lines
from vigil.fleet import Fleet, FleetTraffic, write_inventory, write_keys
from vigil.runtime import build_pipeline
from vigil.settings import Settings


def test_fleet_traffic_is_signed_allowed_and_spread_over_the_fleet(tmp_path: Path) -> None:
    keys = tmp_path / "keys.yaml"
    secrets_by_source = write_keys(keys)
    write_inventory(tmp_path / "data" / "inventory.yaml", Fleet())
    lines = list(FleetTraffic(secrets_by_source, events=3000, seed=3).lines())
    pipeline = build_pipeline(Settings(data_dir=tmp_path / "data", keys_file=keys))
    result = pipeline.process(list(messages_from_lines(lines, "ai.events")))
    assert result.rejected == []
    assert {(d.verified, d.decision) for d in result.decisions} == {(True, "allow")}
    assert len({e.principal_id for e in result.events}) > 1500
    assert len({e.model_id for e in result.events if e.model_id}) > 50
    assert len({e.resource_id for e in result.events if e.resource_kind == "dataset"}) > 400


def test_the_same_seed_gives_the_same_events() -> None:
    secrets_by_source = {f"service-{k:02d}": bytes(32) for k in range(24)}
    start = datetime(2026, 3, 4, 10, 0, tzinfo=UTC)
    first = FleetTraffic(secrets_by_source, events=50, seed=5, start=start)
    again = FleetTraffic(secrets_by_source, events=50, seed=5, start=start)
    assert list(first.lines()) == list(again.lines())
