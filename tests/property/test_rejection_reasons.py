"""Property tests: a mutated valid event is rejected with the code of the mutation.

Each strategy breaks one valid event in one way a producer could; the rejection must
name that fault (a wrong type is not a missing field, a lone surrogate is named as such).
"""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.decode import Rejection, decode
from tests.factories import encode
from tests.property.test_decode_fuzz import valid_documents

CHECKED = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

IDENTIFIER_FIELDS = [("event_id",), ("source",), ("principal", "id"), ("resource", "id")]
"""String fields of every type whose only valid JSON type is a string."""
OBJECT_FIELDS = [("principal",), ("resource",)]
REQUIRED_NESTED = [("principal", "id"), ("principal", "kind"), ("resource", "kind"), ("resource", "id")]
CLOSED_OBJECTS = [(), ("principal",), ("resource",)]
"""Objects whose members the contract lists: any other member is unknown."""

small_ints = st.integers(-(2**31), 2**31)
not_strings = st.one_of(
    st.integers(-(2**31), 2**31),
    st.booleans(),
    st.lists(small_ints, max_size=2),
    st.just({"a": 1}),
)
not_objects = st.one_of(
    st.integers(-(2**31), 2**31),
    st.booleans(),
    st.text(max_size=5),
    st.lists(small_ints, max_size=2),
)


def rejection_of(document: dict[str, Any] | bytes) -> Rejection:
    raw = document if isinstance(document, bytes) else encode(document)
    outcome = decode(raw)
    assert isinstance(outcome, Rejection), outcome
    return outcome


def _at(document: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    node = document
    for key in path:
        node = node[key]
    return node


@CHECKED
@given(valid_documents(), st.sampled_from(IDENTIFIER_FIELDS), not_strings)
def test_a_string_field_of_another_type_is_a_wrong_type(
    document: dict[str, Any], path: tuple[str, ...], value: Any
) -> None:
    _at(document, path[:-1])[path[-1]] = value
    rejection = rejection_of(document)
    assert rejection.code == "wrong_type", rejection
    assert ".".join(path) in rejection.reason


@CHECKED
@given(valid_documents(), st.sampled_from(OBJECT_FIELDS), not_objects)
def test_an_object_field_of_another_type_is_a_wrong_type(
    document: dict[str, Any], path: tuple[str, ...], value: Any
) -> None:
    document[path[0]] = value
    rejection = rejection_of(document)
    assert rejection.code == "wrong_type", rejection
    assert f"{document['type']}.{path[0]}: Input should be an object" in rejection.reason


@CHECKED
@given(valid_documents(), st.sampled_from(REQUIRED_NESTED))
def test_a_dropped_nested_member_is_a_missing_field(document: dict[str, Any], path: tuple[str, ...]) -> None:
    del _at(document, path[:-1])[path[-1]]
    rejection = rejection_of(document)
    assert rejection.code == "missing_field", rejection
    assert f"{document['type']}.{'.'.join(path)}" in rejection.reason


@CHECKED
@given(
    valid_documents(),
    st.sampled_from(CLOSED_OBJECTS),
    st.text(min_size=1, max_size=12),
    st.integers(-(2**31), 2**31),
)
def test_an_added_member_is_an_unknown_field(
    document: dict[str, Any], path: tuple[str, ...], name: str, value: int
) -> None:
    target = _at(document, path)
    if name in target or (not path and name in {"signature", "auth", "traceparent"}):
        name = f"x-{name}"
    target[name] = value
    rejection = rejection_of(document)
    assert rejection.code == "unknown_field", rejection


@CHECKED
@given(valid_documents(), st.sampled_from(IDENTIFIER_FIELDS), st.data())
def test_a_lone_surrogate_is_named(
    document: dict[str, Any], path: tuple[str, ...], data: st.DataObject
) -> None:
    surrogate = data.draw(st.integers(0xD800, 0xDFFF))
    before, after = data.draw(st.text(max_size=4)), data.draw(st.text(max_size=4))
    _at(document, path[:-1])[path[-1]] = f"{before}\x00PLACEHOLDER\x00{after}"
    raw = encode(copy.deepcopy(document)).replace(
        b"\\u0000PLACEHOLDER\\u0000", f"\\u{surrogate:04x}".encode()
    )
    rejection = rejection_of(raw)
    assert rejection.code == "invalid_json", rejection
    assert f"lone surrogate \\u{surrogate:04x}" in rejection.reason


@CHECKED
@given(valid_documents(), st.text(min_size=1, max_size=12))
def test_another_type_name_is_an_unknown_type(document: dict[str, Any], kind: str) -> None:
    if kind in {"inference", "feedback", "training", "access"}:
        kind = f"{kind}-v2"
    document["type"] = kind
    rejection = rejection_of(document)
    assert rejection.code == "unknown_type", rejection
    assert f"Input tag '{kind}'" in rejection.reason


@CHECKED
@given(
    valid_documents(), st.one_of(st.none(), st.lists(small_ints, max_size=2), st.just({"a": 1})), st.data()
)
def test_a_feature_or_label_of_no_allowed_type_is_a_wrong_type_naming_them(
    document: dict[str, Any], value: Any, data: st.DataObject
) -> None:
    if document["type"] == "inference":
        name = data.draw(st.text(min_size=1, max_size=8))
        document["features"][name] = value
        where = f"inference.features.{name}"
    elif document["type"] == "feedback" and value is not None:
        document["label"] = value
        where = "feedback.label"
    else:
        return
    rejection = rejection_of(document)
    assert rejection.code == "wrong_type", rejection
    assert f"{where}: Input should be a boolean, integer, number or string" in rejection.reason
