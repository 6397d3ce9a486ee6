"""DetectStage end to end on realistic streams: each incident yields one finding on
the right key, with the evidence that proves it; stationary traffic yields none."""

from __future__ import annotations

import random
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

import orjson
import pytest

from detectors.config import DetectorsConfig, load_config
from detectors.findings import controls_by_rule
from detectors.monitors.performance import AGE_CHECK_EVERY
from detectors.stage import DetectStage
from schemas.events import Event
from schemas.records import FindingRow
from tests.unit.detectors.events import T0, access, feedback, inference, training
from tests.unit.detectors.sources import module_source


def run(stage: DetectStage, events: Iterable[Event]) -> list[tuple[int, FindingRow]]:
    out = []
    for i, event in enumerate(events):
        out += [(i, f) for f in stage.observe(event, topic="t", partition=0, offset=i)]
    return out


def details(finding: FindingRow) -> dict[str, Any]:
    parsed: dict[str, Any] = orjson.loads(finding.details)
    return parsed


STEP = 200
"""Seconds between scoring events: 2,000 events span ~4.6 days, so the seasonal detectors (which
judge an hour of the day once they have seen it on two days) are judging by event 1,000."""


def scoring(
    n: int, seed: int, *, amount_after: float = 100.0, change: int = 10**9, latency_factor: float = 1.0
):
    rng = random.Random(seed)
    for i in range(n):
        after = i >= change
        amount = rng.gauss(amount_after if after else 100.0, 10.0)
        score = rng.betavariate(2, 5)
        yield inference(
            features={
                "amount": round(amount, 3),
                "risk": round(rng.random(), 4),
                "country": rng.choice("ABCD"),
            },
            score=score,
            label=int(score > 0.5),
            latency_ms=rng.lognormvariate(2.5, 0.3) * (latency_factor if after else 1.0),
            at=STEP * i,
        )


def test_stationary_traffic_yields_no_findings() -> None:
    stage = DetectStage()
    assert run(stage, scoring(20_000, seed=1)) == []
    assert stage.keys > 0


def test_a_drifted_feature_yields_one_finding_with_its_evidence() -> None:
    found = run(DetectStage(), scoring(3_000, seed=2, amount_after=115.0, change=1_500))
    [(position, finding)] = found
    assert 1_500 <= position < 1_560
    assert (finding.stage, finding.detector_or_rule, finding.model_id) == (
        "detector",
        "feature-drift",
        "fraud-v3",
    )
    d = details(finding)
    when = d["expected"]["when"]  # the weekday and hour of the event that confirmed the change
    assert when.split()[0] in ("Thursday", "Friday")
    assert when.endswith(":00")
    assert finding.message.startswith(
        f"feature 'amount' of fraud-v3 drifted: {d['magnitude']['shift_sigmas']:.1f} sd above "
        f"its usual level for {when} (usual 10"
    )
    assert (d["key"], d["kind"], d["change"], d["detector"]) == (
        "amount",
        "feature",
        "mean-up",
        "seasonal-cusum",
    )
    assert d["magnitude"]["mean_before"] == pytest.approx(100, abs=2)
    assert d["magnitude"]["mean_after"] == pytest.approx(115, abs=6)
    assert d["magnitude"]["shift_sigmas"] == pytest.approx(1.5, abs=0.6)
    assert d["reference"]["sd"] == pytest.approx(10, abs=2)
    assert d["window"]["n"] == d["since"]["events_ago"]
    assert d["since"]["ts"] is not None
    started = (T0 + timedelta(seconds=STEP * (position + 1 - d["since"]["events_ago"]))).isoformat()
    assert d["since"]["ts"] == started
    assert d["controls"] == list(controls_by_rule()["feature-drift"])


def test_a_latency_spike_is_reported_and_a_speed_up_is_not() -> None:
    [(position, finding)] = run(DetectStage(), scoring(3_000, seed=3, change=1_500, latency_factor=3.0))
    assert 1_500 <= position < 1_530
    assert finding.detector_or_rule == "latency-spike"
    assert details(finding)["key"] == "latency_ms"
    assert details(finding)["change"] in ("mean-up", "spread-up")
    assert finding.message.startswith("metric 'latency_ms' of fraud-v3 drifted:")
    assert run(DetectStage(), scoring(3_000, seed=3, change=1_500, latency_factor=0.3)) == []


def test_token_counts_spike() -> None:
    rng = random.Random(4)
    events = [
        inference(
            model_id="assistant-llm",
            features={},
            score=None,
            tokens={
                "prompt": rng.randint(50, 400) * (6 if i >= 1_000 else 1),
                "completion": rng.randint(20, 200),
            },
            at=STEP * i,
        )
        for i in range(2_000)
    ]
    [(_, finding)] = run(DetectStage(), events)
    assert (finding.detector_or_rule, details(finding)["key"]) == ("token-spike", "tokens.prompt")


def test_a_categorical_feature_shift() -> None:
    rng = random.Random(5)
    events = [
        inference(
            features={"country": rng.choices("ABCD", [4, 3, 2, 1] if i < 2_000 else [1, 2, 3, 4])[0]}, at=i
        )
        for i in range(4_000)
    ]
    [(position, finding)] = run(DetectStage(), events)
    assert 2_000 <= position < 2_600
    d = details(finding)
    assert (finding.detector_or_rule, d["key"], d["change"]) == ("feature-drift", "country", "distribution")
    assert d["magnitude"]["psi"] > 0.1
    assert "chi-square" in finding.message


def bias_stream(n: int, seed: int, *, change: int, rate_f: float, rate_m: float):
    rng = random.Random(seed)
    for i in range(n):
        sex = rng.choice("fm")
        rate = 0.3 if i < change else (rate_f if sex == "f" else rate_m)
        yield inference(
            model_id="credit-v2",
            features={},
            score=None,
            label=int(rng.random() < rate),
            segment={"sex": sex},
            at=i,
        )


def test_a_bias_injection_in_one_segment_yields_one_finding() -> None:
    # f loses positives, m gains as many: the overall label mix does not move
    found = run(DetectStage(), bias_stream(8_000, seed=6, change=3_000, rate_f=0.12, rate_m=0.48))
    [(position, finding)] = found
    assert 3_000 <= position < 3_600
    assert finding.detector_or_rule == "bias-shift"
    d = details(finding)
    assert (d["attribute"], d["metric"]) == ("sex", "positive_rate")
    assert d["magnitude"]["four_fifths_breached"] is True
    assert "nist-ai-rmf:MEASURE-2.11" in d["controls"]


def test_a_stationary_segment_mix_yields_nothing() -> None:
    assert run(DetectStage(), bias_stream(20_000, seed=7, change=10**9, rate_f=0.3, rate_m=0.3)) == []


def test_a_model_biased_from_the_start_breaches_the_four_fifths_rule_once() -> None:
    found = run(DetectStage(), bias_stream(12_000, seed=8, change=0, rate_f=0.15, rate_m=0.3))
    rules = [f.detector_or_rule for _, f in found]
    assert rules == ["bias-disparity"]
    d = details(found[0][1])
    assert d["lowest"]["group"] == "f"
    assert d["magnitude"]["ratio"] < 0.8


def test_error_rate_rise_from_joined_feedback() -> None:
    rng = random.Random(9)
    stage = DetectStage()
    found = []
    for i in range(6_000):
        truth = int(rng.random() < 0.5)
        error_rate = 0.1 if i < 3_000 else 0.25
        predicted = truth if rng.random() >= error_rate else 1 - truth
        served = inference(features={}, score=None, label=predicted, request_id=f"r{i}", at=i)
        found += stage.observe(served, topic="t", offset=2 * i)
        found += stage.observe(feedback(f"r{i}", truth, at=i + 1), topic="t", offset=2 * i + 1)
    [finding] = found
    assert finding.detector_or_rule == "performance-drift"
    d = details(finding)
    assert d["reference"]["rate"] == pytest.approx(0.1, abs=0.03)
    assert d["window"]["rate"] > 0.18
    assert d["join"]["joined"] > 3_000
    assert d["labelled_events"] > 3_000


def test_feedback_join_is_bounded_in_bytes_whatever_the_request_ids() -> None:
    config = load_config()
    performance = config.models["*"]["performance"]
    bounded = config.model_copy(
        update={
            "models": {
                **config.models,
                "*": {**config.models["*"], "performance": {**performance, "max_pending_bytes": 200_000}},
            }
        }
    )
    stage = DetectStage(DetectorsConfig.model_validate(bounded.model_dump()))
    wide = {f"attribute-{j}": "v" * 200 for j in range(8)}  # ~3.4 KB per waiting prediction
    for i in range(2_000):
        request_id = f"r{i}-" + "x" * 240
        stage.observe(inference(features={}, label=1, request_id=request_id, segment=wide, at=i), offset=i)
    performance_state = stage.partition(0).performance
    assert performance_state.pending_bytes("fraud-v3") <= 200_000
    assert 40 < performance_state.pending("fraud-v3") < 80  # not the 10,000 the entry bound allows
    assert performance_state.counts("fraud-v3")["expired"] == 2_000 - performance_state.pending("fraud-v3")
    # the newest predictions are the ones kept: their feedback still joins
    stage.observe(feedback("r1999-" + "x" * 240, 1, at=2_001), offset=2_001)
    assert performance_state.counts("fraud-v3")["joined"] == 1


def test_feedback_join_is_bounded_in_entries_and_age() -> None:
    stage = DetectStage()
    for i in range(12_000):
        stage.observe(inference(features={}, label=1, request_id=f"r{i}", at=i), topic="t", offset=i)
    performance = stage.partition(0).performance
    assert performance.pending("fraud-v3") == 10_000
    for k in range(AGE_CHECK_EVERY):  # a day later, by event time
        stage.observe(
            inference(features={}, label=1, request_id=f"late{k}", at=200_000 + k), offset=12_000 + k
        )
    assert performance.pending("fraud-v3") == AGE_CHECK_EVERY  # the day-old ones expired
    stage.observe(feedback("r5", 1, at=200_100), topic="t", offset=13_000)
    assert performance.counts("fraud-v3") == {"joined": 0, "expired": 12_000, "unmatched": 1}


def test_a_silent_artifact_change_yields_one_critical_finding() -> None:
    stage = DetectStage()
    events: list[Event] = [inference(digest="sha256:a", at=i) for i in range(100)]
    events += [inference(digest="sha256:rogue", at=100 + i) for i in range(100)]
    events += [training("deploy", artifact="sha256:b", at=300)]
    events += [inference(digest="sha256:b", at=301 + i) for i in range(100)]
    [(position, finding)] = run(stage, events)
    assert position == 100
    assert (finding.detector_or_rule, finding.severity) == ("artifact-unregistered", "critical")
    d = details(finding)
    assert d["artifact_digest"] == "sha256:rogue"
    assert d["reference"]["served_before"] == ["sha256:a"]
    assert "nist-800-207:tenet-5" in d["controls"]


def test_an_artifact_the_inventory_registers_is_left_to_the_policies() -> None:
    """One incident, one alert: the registry policy judges it, the monitor stays quiet."""
    stage = DetectStage()
    events = [inference(digest="sha256:a", at=i) for i in range(50)]
    events += [inference(digest="sha256:rogue", at=50 + i) for i in range(50)]
    found = [
        f
        for offset, event in enumerate(events)
        for f in stage.observe(event, offset=offset, inventory_digest="sha256:a")
    ]
    assert found == []
    # Once the inventory stops registering a digest, the model's served history is
    # its baseline: a third artifact is still caught.
    [(_, finding)] = run(stage, [inference(digest="sha256:c", at=200)])
    assert finding.detector_or_rule == "artifact-unregistered"
    assert "the inventory registers no digest" in finding.message


def test_training_supply_chain_checks() -> None:
    events: list[Event] = [
        training("train", dataset_digest="sha256:ds-1", commit="c1", artifact="sha256:m1"),
        training("deploy", commit="c1", artifact="sha256:m1"),
        training("ingest", dataset_digest="sha256:ds-2"),
        training("train", dataset_digest="sha256:ds-2", commit="c2", artifact="sha256:m2"),  # announced: fine
        training("fine_tune", dataset_digest="sha256:ds-evil", commit="c2", artifact="sha256:m3"),
        training("deploy", commit="c-hotfix", artifact="sha256:m2"),
        training("register", commit="c2", artifact="sha256:unknown"),
    ]
    found = run(DetectStage(), events)
    assert [(i, f.detector_or_rule, f.severity) for i, f in found] == [
        (4, "dataset-digest-new", "high"),
        (5, "code-commit-untrained", "high"),
        (6, "artifact-untrained", "high"),
    ]
    assert details(found[0][1])["reference"]["known_digests"] == ["sha256:ds-1", "sha256:ds-2"]


def office_hours(n: int, seed: int, *, principal: str = "bob"):
    """Reads on weekdays 08-18h UTC, a few per hour, over a fixed set of datasets and addresses."""
    rng = random.Random(seed)
    t = T0
    for _ in range(n):
        t += timedelta(minutes=rng.expovariate(1 / 6))
        if t.hour >= 18:
            t = t.replace(hour=8) + timedelta(days=1)
        yield access(
            principal=principal,
            resource=rng.choice(["transactions-2026", "merchants", "chargebacks"]),
            ip=rng.choice(["10.0.4.17", "10.0.4.18"]),
            records=int(rng.lognormvariate(5, 1)),
            ts=t,
        )


def test_stationary_access_yields_no_findings() -> None:
    assert run(DetectStage(), office_hours(20_000, seed=10)) == []


def access_incident(kind: str) -> list[Event]:
    events: list[Event] = list(office_hours(2_000, seed=11))
    last = events[-1].ts
    if kind == "burst":
        events += [access(ts=last + timedelta(seconds=1 + i // 10)) for i in range(150)]
    elif kind == "bulk":
        events += [access(action="export", records=2_000_000, ts=last + timedelta(minutes=1))]
    elif kind == "new-resource":
        events += [access(resource="customers-pii", ts=last + timedelta(minutes=3))]
    elif kind == "new-ip":
        events += [access(ip="203.0.113.9", ts=last + timedelta(minutes=3))]
    elif kind == "off-hours":
        events += [access(ts=(last + timedelta(days=1)).replace(hour=3))]
    elif kind == "denied":
        events += [
            access(outcome="denied", action="export", ts=last + timedelta(seconds=10 * i)) for i in range(8)
        ]
    return events


@pytest.mark.parametrize(
    ("kind", "rule"),
    [
        ("burst", "access-burst"),
        ("bulk", "access-bulk-read"),
        ("new-resource", "access-new-resource"),
        ("new-ip", "access-new-ip"),
        ("off-hours", "access-off-hours"),
        ("denied", "access-denied-burst"),
    ],
)
def test_each_access_anomaly_yields_one_finding_for_the_principal(kind: str, rule: str) -> None:
    found = run(DetectStage(), access_incident(kind))
    assert [(f.detector_or_rule, f.principal_id) for _, f in found] == [(rule, "bob")]
    d = details(found[0][1])
    assert {"change", "magnitude", "since", "reference", "window", "controls"} <= set(d)
    assert any(c.startswith("nist-800-207:") for c in d["controls"])


def test_only_events_of_the_partition_share_state_and_replays_skip_detectors() -> None:
    stage = DetectStage()
    stage.observe(inference(), topic="t", partition=3, offset=0)
    assert stage.partitions == [3]
    restored = stage.drop(3)
    assert restored is not None
    assert restored.offsets == {"t": 0}
    stage.adopt(3, restored)
    before = stage.partition(3).streams.keys
    stage.observe(inference(model_id="new-model"), topic="t", partition=3, offset=0)  # a replay
    assert stage.partition(3).streams.models == ["fraud-v3"]
    stage.observe(inference(model_id="new-model"), topic="t", partition=3, offset=1)
    assert stage.partition(3).streams.models == ["fraud-v3", "new-model"]
    assert stage.partition(3).streams.keys > before


def test_every_rule_a_detector_emits_maps_to_controls() -> None:

    import detectors.monitors as monitors_package
    from detectors.monitors import (
        access as a,
    )
    from detectors.monitors import (
        bias as b,
    )
    from detectors.monitors import (
        model_streams as m,
    )
    from detectors.monitors import (
        performance as p,
    )
    from detectors.monitors import (
        supply_chain as s,
    )
    from policies.controls import load_catalog

    assert monitors_package
    emitted = set()
    for module in (a, b, m, p, s):
        source = module_source(module.__name__)
        emitted |= {part.split('"')[1] for part in source.split("rule=")[1:] if part.startswith('"')}
    emitted |= set(m.OPERATIONS.values()) | {"access-new-resource", "access-new-ip"}
    mapping = controls_by_rule()
    assert emitted <= set(mapping), f"rules without controls: {emitted - set(mapping)}"
    catalog = load_catalog()
    assert all(c in catalog.controls for ids in mapping.values() for c in ids)
