"""The demo's traffic through the real detectors: its drifting feature is found, and
the rest of the stream stays quiet (the demo must not flood anyone with alerts)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import orjson

from detectors.stage import DetectStage
from schemas.decode import Decoded, decode
from vigil.demo import DemoTraffic, write_demo_keys


def test_demo_traffic_yields_the_amount_drift_and_little_else(tmp_path: Path) -> None:
    traffic = DemoTraffic(write_demo_keys(tmp_path / "keys.yaml"), events=6_000, seed=7)
    stage = DetectStage()
    found = []
    for offset, line in enumerate(traffic.lines()):
        decoded = decode(line)
        if isinstance(decoded, Decoded):
            found += [(offset, f) for f in stage.observe(decoded.event, topic="demo", offset=offset)]
    drift_from = 4_000  # two thirds of the ordinary events
    drifted = [
        (offset, orjson.loads(f.details)["key"])
        for offset, f in found
        if f.detector_or_rule == "feature-drift"
    ]
    assert [key for _, key in drifted] == ["amount"]
    assert drifted[0][0] > drift_from
    rules = Counter((f.detector_or_rule, f.model_id or f.principal_id) for _, f in found)
    assert rules == {
        ("feature-drift", "fraud-v3"): 1,
        ("prediction-drift", "fraud-v3"): 1,  # its score follows the amount
        ("artifact-unregistered", "fraud-v3"): 1,  # the demo's rogue artifact
        ("access-new-resource", "bob"): 1,  # bob only ever read transactions, then exports customers-pii
        ("access-bulk-read", "bob"): 2,  # the two exports of 250k records
    }, rules
