"""The demo's traffic through the real detectors: its drifting feature is found, and
the rest of the stream stays quiet (the demo must not flood anyone with alerts).

Detectors judge event time against the hour of day, so where the demo's hour
boundaries fall matters: the stream is started at a fixed time, once on the hour and
once two minutes before one (the drift then begins just after an hour boundary)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from detectors.stage import DetectStage
from schemas.decode import Decoded, decode
from vigil.demo import DemoTraffic, write_demo_keys


@pytest.mark.parametrize(
    "start", [datetime(2030, 3, 4, 16, 0, tzinfo=UTC), datetime(2030, 3, 4, 16, 58, tzinfo=UTC)]
)
def test_demo_traffic_yields_the_amount_drift_and_little_else(tmp_path: Path, start: datetime) -> None:
    traffic = DemoTraffic(write_demo_keys(tmp_path / "keys.yaml"), events=6_000, seed=7, start=start)
    stage = DetectStage()
    found = []
    for offset, line in enumerate(traffic.lines()):
        decoded = decode(line)
        if isinstance(decoded, Decoded):
            found += [(offset, f) for f in stage.observe(decoded.event, topic="demo", offset=offset)]
    drift_from = 4_000  # two thirds of the ordinary events
    drifted = [
        (offset, orjson.loads(f.details)) for offset, f in found if f.detector_or_rule == "feature-drift"
    ]
    assert {details["key"] for _, details in drifted} == {"amount"}
    assert drifted[0][0] > drift_from
    assert drifted[0][1]["change"] == "mean-up"
    # The demo's drift scales the amount: its level and its spread change. The level is
    # found first; the wider spread may be reported once more after the new level is in
    # place, never a third time.
    assert [details["change"] for _, details in drifted[1:]] in ([], ["spread-up"])
    rules = Counter((f.detector_or_rule, f.model_id or f.principal_id) for _, f in found)
    del rules[("feature-drift", "fraud-v3")]
    assert rules == {
        ("prediction-drift", "fraud-v3"): 1,  # its score follows the amount
        ("artifact-unregistered", "fraud-v3"): 1,  # the demo's rogue artifact
        ("access-new-resource", "bob"): 1,  # bob only ever read transactions, then exports customers-pii
        ("access-bulk-read", "bob"): 2,  # the two exports of 250k records
    }, rules
