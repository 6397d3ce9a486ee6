"""The pipeline takes CloudEvents and trace context from Kafka headers and keeps the trace ids."""

from __future__ import annotations

from datetime import timedelta

from identity.verify import IdentityVerifier
from policies.bundle import load_bundle
from policies.engine import PolicyEngine
from schemas.events import Event, InferenceEvent
from schemas.records import FindingRow, header_bytes
from tests.clock import wall_now
from tests.factories import build_inventory, direct_keyring, encode, inference_doc, signed
from tests.unit.test_envelopes import GEN_AI, TRACEPARENT, binary
from vigil.pipeline import Pipeline, RawMessage


class SeenByDetectors:
    """Stands in for the detect stage: keeps the events it is fed."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def observe(self, event: Event, **_where: object) -> list[FindingRow]:
        self.events.append(event)
        return []


def test_a_binary_cloudevent_with_gen_ai_attributes_is_stored_verified_with_its_trace() -> None:
    detect = SeenByDetectors()
    pipeline = Pipeline(
        IdentityVerifier(direct_keyring()),
        PolicyEngine(load_bundle(), build_inventory()),
        detect=detect,  # type: ignore[arg-type]
    )
    native = signed(inference_doc(attributes=GEN_AI))
    value, headers = binary(native, ("traceparent", TRACEPARENT.encode()))
    plain = signed(inference_doc())
    arrival = wall_now() - timedelta(minutes=5)
    result = pipeline.process(
        [
            RawMessage(value, "ai.inference", offset=0, timestamp=arrival, headers=headers),
            RawMessage(encode(plain), "ai.inference", offset=1, timestamp=arrival),
        ]
    )
    assert result.rejected == []
    enveloped, native_row = result.events
    assert (enveloped.event_id, enveloped.verified, enveloped.verify_reason) == (
        native["event_id"],
        True,
        "ok",
    )
    assert (enveloped.trace_id, enveloped.span_id) == ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7")
    assert enveloped.features["gen_ai.request.temperature"] == 0.2
    assert (native_row.trace_id, native_row.span_id) == ("", "")
    llm_call = detect.events[0]
    assert isinstance(llm_call, InferenceEvent)
    assert llm_call.tokens is not None
    assert (llm_call.tokens.prompt, llm_call.tokens.completion) == (1200, 87)
    assert llm_call.features["gen_ai.request.model"] == "gpt-4o"


def test_a_rejected_binary_cloudevent_keeps_its_headers_without_credentials() -> None:
    pipeline = Pipeline(IdentityVerifier(direct_keyring()), PolicyEngine(load_bundle(), build_inventory()))
    headers = [
        ("ce_specversion", b"1.0"),
        ("ce_id", b"evt-7"),
        ("Authorization", b"Bearer opaque-secret-value"),
        ("x-raw", b"\xfe\xff"),
    ]
    (row,) = pipeline.process([RawMessage(b"{not json", "ai.inference", offset=3, headers=headers)]).rejected
    kept = dict(row.headers)
    assert (kept["ce_specversion"], kept["ce_id"]) == ("1.0", "evt-7")
    assert "opaque-secret-value" not in kept["Authorization"]
    assert kept["Authorization"].startswith("redacted:sha256:")
    assert header_bytes(kept["x-raw"]) == b"\xfe\xff"
