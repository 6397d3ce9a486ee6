"""alerting.store: the findings behind a batch of alert rows, read in one query, as row by row."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from alerting import AlertGate, AlertingStore
from sinks.clickhouse import ClickHouseStore
from tests.clock import FakeClock
from tests.factories import finding
from tests.integration.alerting_rig import alerting_store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[AlertingStore]:
    with alerting_store(tmp_path) as opened:
        yield opened


def test_a_batch_reads_what_each_row_would_whatever_the_ids_hold(
    store: AlertingStore, clock: FakeClock
) -> None:
    odd_ids = [("m,1", 'evt,"1"'), ("m,1", "evt'2"), ("m2", "évt 3\\n"), ("m2", '["evt-4"]')]
    findings = [
        finding(
            stage="policy", rule=f"rule-{n}", model_id=model, event_id=event, resource_id=f"r{n}"
        )._replace(details=orjson.dumps({"controls": [f"control-{n}"]}).decode())
        for n, (model, event) in enumerate(odd_ids)
    ]
    never_stored = finding(stage="policy", rule="rule-x", model_id="m2", event_id="evt-5", resource_id="rx")
    ClickHouseStore(store.client).write({"findings": findings})
    gate = AlertGate(resolve_timeout=300, clock=clock, wall_clock=clock.wall)
    rows = gate.admit([*findings, never_stored])
    assert len(rows) == 5

    batch = store.findings_details(rows)

    for row in rows:
        key = (row.event_id, row.stage, row.detector_or_rule)
        assert batch.get(key, {}) == store.finding_details(row)
    assert sorted(d["controls"][0] for d in batch.values()) == [f"control-{n}" for n in range(4)]
    assert ("evt-5", "policy", "rule-x") not in batch
    assert store.findings_details([]) == {}
