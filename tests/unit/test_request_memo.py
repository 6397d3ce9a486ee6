"""Memoized Cedar requests: a hit must be exactly what building afresh would give."""

from __future__ import annotations

from identity.tokens import TokenResult
from identity.verify import Verdict
from policies.requests import _build, request_for
from tests.factories import access_doc, build_inventory, event_of, inference_doc, training_doc

OK = Verdict(True, "ok", "k")


def test_a_repeated_event_shape_reuses_the_same_request() -> None:
    inventory = build_inventory()
    first = request_for(event_of(inference_doc()), OK, inventory)
    again = request_for(event_of(inference_doc()), OK, inventory)
    assert again is first


def test_every_input_of_a_request_separates_memo_entries() -> None:
    inventory = build_inventory()
    base_inference = inference_doc()
    variants = [
        (event_of(base_inference), OK),
        (event_of(base_inference), Verdict(False, "bad_signature", "k")),
        (event_of(base_inference), Verdict(True, "ok", "k", TokenResult(True, "ok", ("analyst",), True))),
        (event_of(inference_doc(model_id="credit-v2")), OK),
        (event_of(inference_doc(artifact_digest="sha256:other")), OK),
        (event_of(access_doc(mfa=False)), OK),
        (event_of(access_doc(mfa=True)), OK),
        (event_of(access_doc(outcome="denied")), OK),
        (event_of(training_doc()), OK),
        (event_of(training_doc(approval=None)), OK),
        (event_of(training_doc(dataset_id="customers-pii")), OK),
    ]
    for event, verdict in variants:
        memoized = request_for(event, verdict, inventory)
        assert memoized == _build(event, verdict, build_inventory()), (event.type, verdict)


def test_a_reloaded_inventory_starts_an_empty_memo() -> None:
    event = event_of(inference_doc())
    old = build_inventory()
    request_for(event, OK, old)
    fresh = build_inventory()
    assert fresh.request_memo == {}
    assert request_for(event, OK, fresh) is not request_for(event, OK, old)


def test_a_shape_seen_all_day_is_built_once_per_side_of_business_hours() -> None:
    inventory = build_inventory()
    monday = "2030-01-07T{}:00Z"  # a Monday; business hours 07:00-19:00 UTC
    morning, afternoon, night = (
        event_of(inference_doc(ts=monday.format(hour))) for hour in ("09:15", "16:40", "23:05")
    )
    first = request_for(morning, OK, inventory)
    assert request_for(afternoon, OK, inventory) is first
    late = request_for(night, OK, inventory)
    assert dict(first.facts)["off_hours"] is False
    assert dict(late.facts)["off_hours"] is True
    assert late == _build(night, OK, build_inventory())
