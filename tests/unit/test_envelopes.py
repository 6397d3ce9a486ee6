"""CloudEvents, W3C trace context and OpenTelemetry GenAI attributes mapped onto the contract."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from identity.verify import verify
from schemas.decode import Decoded, Rejection, decode
from schemas.envelopes import Headers
from schemas.events import InferenceEvent
from tests.factories import access_doc, direct_keyring, encode, inference_doc, signed

KEYRING = direct_keyring()
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
OTHER_TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def decoded(raw: bytes, headers: Headers | None = None) -> Decoded:
    outcome = decode(raw, headers=headers)
    assert isinstance(outcome, Decoded), outcome
    return outcome


def rejected(raw: bytes, headers: Headers | None = None) -> Rejection:
    outcome = decode(raw, headers=headers)
    assert isinstance(outcome, Rejection), outcome
    return outcome


def structured(native: dict[str, Any], **attributes: Any) -> dict[str, Any]:
    """A structured-mode CloudEvent carrying ``native``, its id/source/time/type lifted out."""
    data = {k: v for k, v in native.items() if k not in {"event_id", "source", "ts", "type"}}
    return {
        "specversion": "1.0",
        "id": native["event_id"],
        "source": native["source"],
        "time": native["ts"],
        "type": f"vigil.{native['type']}",
        "datacontenttype": "application/json",
        "data": data,
        **attributes,
    }


def binary(native: dict[str, Any], *extra: tuple[str, bytes]) -> tuple[bytes, list[tuple[str, bytes | None]]]:
    """A binary-mode CloudEvent: attributes as ``ce_*`` headers, the rest of the event as the value."""
    envelope = structured(native)
    headers: list[tuple[str, bytes | None]] = [
        (f"ce_{name}", str(value).encode()) for name, value in envelope.items() if name not in {"data"}
    ]
    headers = [
        ("content-type", b"application/json") if k == "ce_datacontenttype" else (k, v) for k, v in headers
    ]
    return encode(envelope["data"]), [*headers, *extra]


STRUCTURED = [("content-type", b"application/cloudevents+json; charset=utf-8")]


# --- CloudEvents -----------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["structured", "structured-file", "binary"])
def test_a_cloudevent_is_the_native_event_it_carries_and_its_signature_verifies(mode: str) -> None:
    native = signed(access_doc())
    if mode == "binary":
        raw, headers = binary(native)
        outcome = decoded(raw, headers)
    else:
        outcome = decoded(encode(structured(native)), STRUCTURED if mode == "structured" else None)
    as_native = decoded(encode(native))
    assert outcome.event == as_native.event
    assert outcome.canonical == as_native.canonical
    assert verify(outcome.event, outcome.canonical, KEYRING).reason == "ok"


def test_every_cloudevent_attribute_with_a_contract_field_is_signed() -> None:
    native = signed(access_doc())
    for attribute, value in [
        ("id", "other-id"),
        ("source", "checkout-api"),
        ("time", "2026-01-01T00:00:00Z"),
    ]:
        moved = {k: v for k, v in native.items() if k not in {"event_id", "source", "ts"}}
        envelope = {**structured(native), "data": moved, attribute: value}
        outcome = decoded(encode(envelope), STRUCTURED)
        assert verify(outcome.event, outcome.canonical, KEYRING).reason in {
            "bad_signature",
            "key_not_for_source",
        }


def test_data_may_repeat_the_lifted_fields_but_not_contradict_them() -> None:
    native = signed(access_doc())
    same = {**structured(native), "data": native}
    assert decoded(encode(same), STRUCTURED).event.event_id == native["event_id"]
    other = {**structured(native), "id": "another-id", "data": native}
    rejection = rejected(encode(other), STRUCTURED)
    assert rejection.code == "invalid_envelope"
    assert "cloudevent.id: 'another-id' differs from data.event_id" in rejection.reason


@pytest.mark.parametrize(
    ("change", "code", "reason"),
    [
        ({"specversion": "0.3"}, "invalid_envelope", "cloudevent.specversion: must be '1.0'"),
        ({"type": "com.example.order"}, "unknown_type", "cloudevent.type: 'com.example.order' is not one of"),
        (
            {"datacontenttype": "application/xml"},
            "invalid_envelope",
            "cloudevent.datacontenttype: must be JSON",
        ),
        ({"data": "text"}, "invalid_envelope", "cloudevent.data: CloudEvent data must be a JSON object"),
        ({"type": "access"}, "unknown_type", "cloudevent.type: 'access' is not one of vigil.inference"),
        ({"data_base64": "e30="}, "invalid_envelope", "data must be a JSON object"),
    ],
)
def test_a_cloudevent_the_contract_cannot_take_is_rejected_with_the_attribute(
    change: dict[str, Any], code: str, reason: str
) -> None:
    envelope = {**structured(signed(access_doc())), **change}
    rejection = rejected(encode(envelope), STRUCTURED)
    assert rejection.code == code
    assert reason in rejection.reason


def test_a_binary_cloudevent_names_its_header_and_schema_faults_name_the_field() -> None:
    native = access_doc()
    raw, headers = binary(native)
    wrong = [(k, b"0.3" if k == "ce_specversion" else v) for k, v in headers]
    assert "header ce_specversion" in rejected(raw, wrong).reason
    assert rejected(b"[1]", headers).reason.startswith("message: CloudEvent data must be a JSON object")
    del native["mfa"]
    raw, headers = binary(native)
    rejection = rejected(raw, headers)
    assert (rejection.code, rejection.reason) == ("missing_field", "access.mfa: Field required")


def test_a_native_event_with_unrelated_headers_is_decoded_as_native() -> None:
    raw = encode(signed(access_doc()))
    outcome = decoded(raw, [("x-service", b"portal"), ("content-type", b"application/json")])
    assert outcome == decoded(raw)


# --- trace context ---------------------------------------------------------------------------


def test_traceparent_from_the_signed_field_a_cloudevent_or_a_header_in_that_order() -> None:
    header = [("traceparent", OTHER_TRACEPARENT.encode())]
    with_field = decoded(encode(signed(access_doc(traceparent=TRACEPARENT))), header)
    assert (with_field.trace_id, with_field.span_id) == (
        "4bf92f3577b34da6a3ce929d0e0e4736",
        "00f067aa0ba902b7",
    )
    from_header = decoded(encode(signed(access_doc())), header)
    assert from_header.trace_id == "0af7651916cd43dd8448eb211c80319c"
    assert from_header.span_id == "b7ad6b7169203331"
    envelope = structured(signed(access_doc()), traceparent=TRACEPARENT)
    from_envelope = decoded(encode(envelope), [*STRUCTURED, *header])
    assert from_envelope.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    raw, headers = binary(signed(access_doc()), ("ce_traceparent", TRACEPARENT.encode()))
    assert decoded(raw, headers).span_id == "00f067aa0ba902b7"


@pytest.mark.parametrize(
    "value",
    [
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # zero trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # zero span id
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # forbidden version
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  # upper case
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",  # version 00 has four fields
        "4bf92f3577b34da6a3ce929d0e0e4736",
    ],
)
def test_an_invalid_traceparent_field_is_rejected_and_an_invalid_header_ignored(value: str) -> None:
    rejection = rejected(encode(access_doc(traceparent=value)))
    assert (rejection.code, rejection.reason.split(":")[0]) == ("schema", "access.traceparent")
    ignored = decoded(encode(access_doc()), [("traceparent", value.encode())])
    assert (ignored.trace_id, ignored.span_id) == ("", "")


def test_a_later_traceparent_version_keeps_its_ids() -> None:
    later = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-comes-next"
    assert decoded(encode(access_doc(traceparent=later))).trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"


# --- OpenTelemetry GenAI ---------------------------------------------------------------------------

GEN_AI = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "openai",
    "gen_ai.request.model": "gpt-4o",
    "gen_ai.response.model": "gpt-4o-2024-08-06",
    "gen_ai.request.temperature": 0.2,
    "gen_ai.request.max_tokens": 512,
    "gen_ai.usage.input_tokens": 1200,
    "gen_ai.usage.output_tokens": 87,
    "gen_ai.response.finish_reasons": ["stop"],
    "server.address": "api.openai.com",
}


def llm_call(**fields: Any) -> dict[str, Any]:
    return inference_doc(**{"model_id": "support-bot", "features": {"prompt_chars": 3400}, **fields})


def test_gen_ai_usage_fills_tokens_and_parameters_become_features() -> None:
    document = signed(llm_call(attributes=GEN_AI))
    outcome = decoded(encode(document))
    event = outcome.event
    assert isinstance(event, InferenceEvent)
    assert (event.tokens.prompt, event.tokens.completion) == (1200, 87)  # type: ignore[union-attr]
    assert event.features == {
        "prompt_chars": 3400,
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.response.model": "gpt-4o-2024-08-06",
        "gen_ai.request.temperature": 0.2,
        "gen_ai.request.max_tokens": 512,
    }
    # the signature covers the attributes as sent, not the mapping
    assert orjson.loads(outcome.canonical)["attributes"] == GEN_AI
    assert verify(event, outcome.canonical, KEYRING).reason == "ok"


def test_deprecated_usage_names_count_and_a_feature_sent_keeps_its_value() -> None:
    attributes = {"gen_ai.usage.prompt_tokens": 10, "gen_ai.system": "anthropic", "gen_ai.request.top_p": 0.9}
    event = decoded(encode(llm_call(attributes=attributes, features={"gen_ai.request.top_p": 1.0}))).event
    assert isinstance(event, InferenceEvent)
    assert (event.tokens.prompt, event.tokens.completion) == (10, 0)  # type: ignore[union-attr]
    assert event.features["gen_ai.provider.name"] == "anthropic"
    assert event.features["gen_ai.request.top_p"] == 1.0


def test_openinference_names_fill_the_same_fields() -> None:
    attributes = {
        "llm.token_count.prompt": 640,
        "llm.token_count.completion": 32,
        "llm.model_name": "claude-sonnet",
        "llm.provider": "anthropic",
    }
    event = decoded(encode(signed(llm_call(attributes=attributes)))).event
    assert isinstance(event, InferenceEvent)
    assert (event.tokens.prompt, event.tokens.completion) == (640, 32)  # type: ignore[union-attr]
    assert event.features["gen_ai.request.model"] == "claude-sonnet"
    assert event.features["gen_ai.provider.name"] == "anthropic"


def test_tokens_must_agree_with_the_usage_attributes() -> None:
    agreeing = llm_call(attributes=GEN_AI, tokens={"prompt": 1200, "completion": 87})
    assert isinstance(decoded(encode(agreeing)).event, InferenceEvent)
    rejection = rejected(encode(llm_call(attributes=GEN_AI, tokens={"prompt": 5, "completion": 87})))
    assert rejection.code == "schema"
    assert "inference.tokens: 5/87 differs from the gen_ai.usage attributes 1200/87" in rejection.reason


@pytest.mark.parametrize(
    ("attributes", "where"),
    [
        ({"gen_ai.usage.input_tokens": -1}, "inference.attributes.gen_ai.usage.input_tokens"),
        ({"gen_ai.usage.input_tokens": "12"}, "inference.attributes.gen_ai.usage.input_tokens"),
        ({"gen_ai.request.temperature": "hot"}, "inference.attributes.gen_ai.request.temperature"),
        ({"vendor.nested": {"a": 1}}, "inference.attributes.vendor.nested"),
    ],
)
def test_a_malformed_attribute_is_rejected_by_name(attributes: dict[str, Any], where: str) -> None:
    assert where in rejected(encode(llm_call(attributes=attributes))).reason


def test_gen_ai_attributes_in_a_cloudevent() -> None:
    native = signed(llm_call(attributes=GEN_AI, traceparent=TRACEPARENT))
    outcome = decoded(encode(structured(native)), STRUCTURED)
    assert outcome.event.tokens.completion == 87  # type: ignore[union-attr]
    assert outcome.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert verify(outcome.event, outcome.canonical, KEYRING).reason == "ok"
