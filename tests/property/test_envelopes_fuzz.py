"""Property tests: any headers with any value never make decode raise, and a valid event
carried by a CloudEvent in either mode decodes to the native event's canonical form."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.decode import Decoded, Rejection, decode
from tests.factories import encode, signed
from tests.property.test_decode_fuzz import valid_documents
from tests.unit.test_envelopes import STRUCTURED, binary, structured

CHECKED = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

header_names = st.sampled_from(
    ["content-type", "ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time", "traceparent", "x"]
)
header_values = st.one_of(
    st.none(),
    st.binary(max_size=40),
    st.sampled_from([b"application/cloudevents+json", b"application/json", b"1.0", b"vigil.access"]),
)
headers = st.lists(st.tuples(header_names, header_values), max_size=6)


@CHECKED
@given(st.binary(max_size=600), headers)
def test_any_headers_with_any_value_never_raise(
    raw: bytes, kafka_headers: list[tuple[str, bytes | None]]
) -> None:
    outcome = decode(raw, headers=kafka_headers)
    assert isinstance(outcome, Decoded | Rejection)


@CHECKED
@given(valid_documents(), headers)
def test_any_headers_on_a_valid_event_never_raise(
    document: dict[str, Any], kafka_headers: list[tuple[str, bytes | None]]
) -> None:
    outcome = decode(encode(signed(document)), headers=kafka_headers)
    assert isinstance(outcome, Decoded | Rejection)


@CHECKED
@given(valid_documents(), st.sampled_from(["structured", "structured-file", "binary"]))
def test_a_cloudevent_gives_the_native_canonical_form(document: dict[str, Any], mode: str) -> None:
    native = signed(document)
    expected = decode(encode(native))
    assert isinstance(expected, Decoded)
    if mode == "binary":
        value, kafka_headers = binary(native)
        outcome = decode(value, headers=kafka_headers)
    else:
        outcome = decode(
            orjson.dumps(structured(native)), headers=STRUCTURED if mode == "structured" else None
        )
    assert isinstance(outcome, Decoded), outcome
    assert outcome.canonical == expected.canonical
    assert outcome.event == expected.event
