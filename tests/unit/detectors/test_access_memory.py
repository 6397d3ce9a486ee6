"""Per-partition state stays within its byte budgets, however many principals, resources and models appear."""

from __future__ import annotations

import gc
import tracemalloc
from datetime import timedelta

import orjson

from detectors.config import load_config
from detectors.monitors.access import Access, client_network
from detectors.monitors.budget import Budget
from detectors.monitors.performance import Performance
from tests.unit.detectors.events import T0, access, feedback, inference

CONFIG = load_config().access


def _wander(monitor: Access, principals: int, resources: int) -> None:
    """Every principal touches many datasets from many networks: the worst case for novelty sets."""
    for p in range(principals):
        for r in range(resources):
            event = access(
                principal=f"user-{p:05d}",
                resource=f"dataset-{p}-{r}",
                ip=f"10.{p % 250}.{r % 250}.1",
                ts=T0 + timedelta(seconds=p * resources + r),
            )
            monitor.observe(event, CONFIG)


def test_the_estimate_stays_under_the_budget_and_the_oldest_principals_leave() -> None:
    monitor = Access(Budget(100_000), max_bytes=200_000)
    _wander(monitor, principals=60, resources=40)
    assert monitor.estimated_bytes <= 200_000
    assert monitor.forgotten > 0
    assert "user-00059" in monitor._principals  # the most recent stay
    assert "user-00000" not in monitor._principals
    assert monitor.budget.used == monitor.keys  # forgotten principals give their place back


def test_the_estimate_is_close_to_what_the_state_really_holds() -> None:
    gc.collect()
    tracemalloc.start()
    try:
        # The address cache is the process's, not the monitor's: bounded, and full before measuring.
        for n in range(client_network.cache_info().maxsize or 0):
            client_network(f"192.0.{n // 256}.{n % 256}")
        before = tracemalloc.get_traced_memory()[0]
        monitor = Access(Budget(100_000), max_bytes=1 << 40)
        _wander(monitor, principals=200, resources=60)
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert 0.7 < held / monitor.estimated_bytes < 1.4, (held, monitor.estimated_bytes)


def test_a_restored_state_still_knows_what_it_saw() -> None:
    monitor = Access(Budget(100_000))
    for r in range(60):
        monitor.observe(access(resource=f"dataset-{r % 3}", ts=T0 + timedelta(minutes=r)), CONFIG)
    saved = orjson.loads(
        orjson.dumps(monitor.export_groups(set(monitor.changed)), option=orjson.OPT_NON_STR_KEYS)
    )
    restored = Access(Budget(100_000))
    restored.import_groups(list(saved.values()))
    later = T0 + timedelta(hours=3)
    assert restored.observe(access(resource="dataset-1", ts=later), CONFIG) == []
    [signal] = restored.observe(access(resource="dataset-new", ts=later), CONFIG)
    assert signal.rule == "access-new-resource"


def test_predictions_awaiting_feedback_stay_within_the_partition_budget() -> None:
    """Many models each under their own limit still fit the partition's; a late model still joins."""
    config = load_config().for_model("fraud-v3")
    monitor = Performance(Budget(100_000), max_bytes=300_000)
    for n in range(6_000):
        model = f"model-{n % 30}"
        monitor.remember(inference(model_id=model, request_id=f"r-{n}", at=n), config)
    assert 0 < monitor.pending_total <= 300_000
    assert monitor.pending_total == sum(monitor.pending_bytes(f"model-{m}") for m in range(30))
    monitor.remember(inference(model_id="late-model", request_id="late-1", at=6_001), config)
    assert monitor.pending("late-model") == 1
    monitor.observe(feedback("late-1", 1, model_id="late-model", at=6_002), config)
    assert monitor.counts("late-model")["joined"] == 1
