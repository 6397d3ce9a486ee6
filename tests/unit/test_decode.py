"""schemas.decode: bytes in, exactly one Decoded or Rejection out, with a useful reason."""

from __future__ import annotations

import json

import orjson
import pytest

from schemas import AccessEvent, FeedbackEvent, InferenceEvent, TrainingEvent
from schemas.canonical import canonical_bytes
from schemas.decode import DEFAULT_MAX_BYTES, Decoded, Rejection, decode
from tests.factories import BUILDERS, access_doc, encode, feedback_doc, inference_doc, signed, training_doc


def rejected(raw: bytes, **kwargs: int) -> Rejection:
    outcome = decode(raw, **kwargs)
    assert isinstance(outcome, Rejection), f"expected a rejection, got {outcome!r}"
    return outcome


def decoded(raw: bytes) -> Decoded:
    outcome = decode(raw)
    assert isinstance(outcome, Decoded), f"expected an event, got {outcome!r}"
    return outcome


# --- valid events ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "model"),
    [
        ("inference", InferenceEvent),
        ("feedback", FeedbackEvent),
        ("training", TrainingEvent),
        ("access", AccessEvent),
    ],
)
def test_valid_signed_event_of_each_type_decodes(kind: str, model: type) -> None:
    document = signed(BUILDERS[kind]())
    result = decoded(encode(document))
    assert isinstance(result.event, model)
    assert result.event.event_id == document["event_id"]
    assert result.event.signature is not None
    assert result.event.signature.value == document["signature"]["value"]


def test_unsigned_event_decodes_without_signature() -> None:
    result = decoded(encode(feedback_doc()))
    assert result.event.signature is None


def test_inference_features_keep_their_json_types() -> None:
    document = inference_doc(features={"amount": 3, "ratio": 0.5, "country": "DE", "card_present": False})
    event = decoded(encode(document)).event
    assert isinstance(event, InferenceEvent)
    assert event.features == {"amount": 3, "ratio": 0.5, "country": "DE", "card_present": False}
    assert type(event.features["amount"]) is int
    assert type(event.features["card_present"]) is bool
    assert type(event.features["country"]) is str


@pytest.mark.parametrize(
    "action", ["ingest", "train", "fine_tune", "evaluate", "register", "deploy", "rollback"]
)
def test_every_lifecycle_action_is_a_valid_training_action(action: str) -> None:
    event = decoded(encode(training_doc(action=action))).event
    assert event.action == action


@pytest.mark.parametrize("action", ["read", "write", "export", "delete", "login"])
def test_every_access_action_is_a_valid_access_action(action: str) -> None:
    assert decoded(encode(access_doc(action=action))).event.action == action


# --- rejection codes ---------------------------------------------------------------


def test_oversize_is_rejected_before_parsing() -> None:
    raw = encode(inference_doc()) + b" " * DEFAULT_MAX_BYTES
    rejection = rejected(raw)
    assert rejection.code == "oversize"
    assert str(len(raw)) in rejection.reason
    assert str(DEFAULT_MAX_BYTES) in rejection.reason


def test_oversize_limit_is_configurable_and_inclusive() -> None:
    raw = encode(feedback_doc())
    assert isinstance(decode(raw, max_bytes=len(raw)), Decoded)
    assert rejected(raw, max_bytes=len(raw) - 1).code == "oversize"


@pytest.mark.parametrize(
    "raw",
    [b"", b"{", b'{"event_id": "broken-1", "type": "inference", ', b"\xff\xfe\x00", b"{'a': 1}", b"nul"],
)
def test_invalid_json(raw: bytes) -> None:
    assert rejected(raw).code == "invalid_json"


@pytest.mark.parametrize("raw", [b"[]", b"[1, 2]", b'"inference"', b"42", b"null", b"true"])
def test_json_that_is_not_an_object(raw: bytes) -> None:
    assert rejected(raw).code == "not_an_object"


def test_unknown_type_names_the_type_and_the_known_ones() -> None:
    rejection = rejected(encode({**access_doc(), "type": "telemetry"}))
    assert rejection.code == "unknown_type"
    assert "telemetry" in rejection.reason
    assert "access" in rejection.reason


def test_missing_type_is_a_missing_field() -> None:
    document = access_doc()
    del document["type"]
    rejection = rejected(encode(document))
    assert rejection.code == "missing_field"
    assert "type" in rejection.reason


@pytest.mark.parametrize(
    ("kind", "field"),
    [
        ("inference", "features"),
        ("inference", "model_version"),
        ("feedback", "label"),
        ("training", "dataset_digest"),
        ("access", "mfa"),
        ("access", "ts"),
    ],
)
def test_missing_field_is_named(kind: str, field: str) -> None:
    document = BUILDERS[kind]()
    del document[field]
    rejection = rejected(encode(document))
    assert rejection.code == "missing_field"
    assert f"{kind}.{field}" in rejection.reason


def test_missing_nested_field_is_named_with_its_path() -> None:
    document = access_doc()
    del document["principal"]["kind"]
    rejection = rejected(encode(document))
    assert rejection.code == "missing_field"
    assert "access.principal.kind" in rejection.reason


def test_demo_style_stub_without_fields_is_rejected_as_missing() -> None:
    raw = orjson.dumps({"event_id": "no-fields", "schema_version": 1, "type": "access"})
    rejection = rejected(raw)
    assert rejection.code == "missing_field"
    # at most three errors are spelled out, the rest are counted
    assert "more errors" in rejection.reason


def test_unknown_top_level_field_is_rejected_not_ignored() -> None:
    document = inference_doc()
    document["feature"] = document.pop("features")  # the typo the schema exists to catch
    rejection = rejected(encode(document))
    # the missing ``features`` or the unknown ``feature`` may be reported first; both are named
    assert rejection.code in {"unknown_field", "missing_field"}
    assert "inference.feature" in rejection.reason


def test_unknown_field_code() -> None:
    rejection = rejected(encode({**feedback_doc(), "comment": "hello"}))
    assert rejection.code == "unknown_field"
    assert "feedback.comment" in rejection.reason


def test_unknown_nested_field() -> None:
    document = access_doc()
    document["client"]["country"] = "NL"
    rejection = rejected(encode(document))
    assert rejection.code == "unknown_field"
    assert "access.client.country" in rejection.reason


@pytest.mark.parametrize(
    ("kind", "changes", "where"),
    [
        ("feedback", {"schema_version": 2}, "feedback.schema_version"),
        ("feedback", {"ts": "2026-01-01T00:00:00"}, "feedback.ts"),  # naive timestamp
        ("access", {"records": -1}, "access.records"),
        ("access", {"outcome": "maybe"}, "access.outcome"),
        ("inference", {"latency_ms": -0.5}, "inference.latency_ms"),
        ("inference", {"event_id": ""}, "inference.event_id"),
        ("inference", {"event_id": "x" * 257}, "inference.event_id"),
        ("inference", {"features": {f"f{i}": 1.0 for i in range(513)}}, "inference.features"),
    ],
)
def test_schema_violations_name_the_field(kind: str, changes: dict[str, object], where: str) -> None:
    rejection = rejected(encode({**BUILDERS[kind](), **changes}))
    assert rejection.code == "schema"
    assert where in rejection.reason


def test_bad_signature_shape_is_a_schema_error() -> None:
    document = signed(feedback_doc())
    document["signature"]["value"] = "zz" * 32
    rejection = rejected(encode(document))
    assert rejection.code == "schema"
    assert "feedback.signature.value" in rejection.reason


def test_signature_alg_other_than_hmac_sha256_is_rejected() -> None:
    document = signed(feedback_doc())
    document["signature"]["alg"] = "none"
    rejection = rejected(encode(document))
    assert rejection.code == "schema"
    assert "feedback.signature.alg" in rejection.reason


@pytest.mark.parametrize(
    ("kind", "action"),
    [
        ("inference", "export"),
        ("inference", "feedback"),
        ("feedback", "infer"),
        ("training", "read"),
        ("access", "deploy"),
    ],
)
def test_action_not_allowed_for_the_type(kind: str, action: str) -> None:
    document = BUILDERS[kind]()
    document["action"] = action
    rejection = rejected(encode(document))
    assert rejection.code == "schema"
    assert f"{kind}.action" in rejection.reason


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1e999", b"-1e999"])
def test_non_finite_feature_numbers_are_rejected(literal: bytes) -> None:
    document = inference_doc(features={"amount": 0.0, "merchant_risk": 0.1})
    raw = encode(document).replace(b'"amount":0.0', b'"amount":' + literal)
    assert literal in raw
    rejection = rejected(raw)
    assert rejection.code in {"schema", "invalid_json"}
    if rejection.code == "schema":
        assert "features" in rejection.reason


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity"])
def test_non_finite_metrics_and_scores_are_rejected(literal: bytes) -> None:
    raw = encode(training_doc()).replace(b'"auc":0.93', b'"auc":' + literal)
    assert rejected(raw).code == "schema"
    raw = encode(inference_doc()).replace(b'"score":0.12', b'"score":' + literal)
    assert rejected(raw).code == "schema"


def test_lone_surrogate_string_is_rejected_as_not_canonicalizable() -> None:
    raw = encode(feedback_doc(label="ok")).replace(b'"label":"ok"', b'"label":"\\ud800"')
    assert rejected(raw).code == "invalid_json"


def test_deeply_nested_json_is_rejected_not_raised() -> None:
    raw = encode(feedback_doc(label=0)).replace(b'"label":0', b'"label":' + b"[" * 10_000 + b"]" * 10_000)
    rejection = rejected(raw)
    assert rejection.code in {"invalid_json", "schema"}


# --- canonical bytes ---------------------------------------------------------------


def test_canonical_is_sorted_compact_utf8_without_signature() -> None:
    document = signed(access_doc(principal="zoë"))
    canonical = decoded(encode(document)).canonical
    unsigned = {k: v for k, v in document.items() if k != "signature"}
    assert b"signature" not in canonical
    assert "zoë".encode() in canonical  # UTF-8, no ASCII escaping
    expected = json.dumps(unsigned, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert canonical == expected.encode()


def test_canonical_is_independent_of_key_order_and_whitespace() -> None:
    document = signed(inference_doc())
    compact = encode(document)

    def reversed_keys(value: object) -> object:
        if isinstance(value, dict):
            return {k: reversed_keys(value[k]) for k in reversed(list(value))}
        return value

    pretty = json.dumps(reversed_keys(document), indent=4, ensure_ascii=True).encode()
    assert pretty != compact
    assert decoded(pretty).canonical == decoded(compact).canonical


def test_canonical_matches_what_the_producer_signed() -> None:
    document = training_doc()
    assert decoded(encode(signed(document))).canonical == canonical_bytes(document)


def test_canonical_is_the_same_signed_or_unsigned() -> None:
    document = access_doc()
    assert decoded(encode(document)).canonical == decoded(encode(signed(document))).canonical


def test_canonical_changes_when_a_value_changes() -> None:
    first = inference_doc(features={"amount": 1.0})
    second = {**first, "features": {"amount": 1.5}}
    assert decoded(encode(first)).canonical != decoded(encode(second)).canonical


def test_distinct_integers_never_share_a_canonical_form() -> None:
    """Two documents that decode to different events must not have one canonical form,
    or a signature over one also "proves" the other.

    Integers beyond 64 bits are kept exactly by pydantic but become (rounded) floats in
    the orjson-built canonical form.
    """
    big = 10**30
    first = encode(feedback_doc(label=0)).replace(b'"label":0', f'"label":{big}'.encode())
    second = first.replace(str(big).encode(), str(big + 1).encode())
    one, two = decode(first), decode(second)
    events_differ = isinstance(one, Decoded) and isinstance(two, Decoded) and one.event != two.event
    if events_differ:
        assert one.canonical != two.canonical


# --- the code names the fault ------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"principal": 42}, "access.principal: Input should be an object"),
        ({"principal": None}, "access.principal: Input should be an object"),
        ({"mfa": "yes"}, "access.mfa: Input should be a valid boolean"),
        ({"records": "120"}, "access.records: Input should be a valid integer"),
        ({"ts": 1764000000}, "access.ts: Input should be a valid datetime"),
        ({"event_id": ["e-1"]}, "access.event_id: Input should be a valid string"),
    ],
)
def test_a_field_of_another_json_type_is_a_wrong_type_not_a_missing_field(
    changes: dict[str, object], reason: str
) -> None:
    rejection = rejected(encode({**access_doc(), **changes}))
    assert rejection.code == "wrong_type"
    assert rejection.reason == reason


def _with_principal_id_text(escaped: bytes) -> bytes:
    return encode(access_doc(principal="PLACEHOLDER")).replace(b"PLACEHOLDER", escaped)


@pytest.mark.parametrize(
    "escaped", [b"\\ud800", b"a\\udbff", b"\\udc00b", b"\\ude00\\ud83d", b"\\ud83d\\u0041"]
)
def test_a_lone_surrogate_is_named_with_its_place(escaped: bytes) -> None:
    raw = _with_principal_id_text(escaped)
    rejection = rejected(raw)
    assert rejection.code == "invalid_json"
    assert "lone surrogate \\u" in rejection.reason
    column = int(rejection.reason.split("column ")[1].split(":")[0])
    assert raw[column - 1 : column + 5].lower().startswith(b"\\ud")


def test_a_surrogate_pair_and_an_escaped_backslash_are_text() -> None:
    pair = decoded(_with_principal_id_text(b"\\ud83d\\ude00"))
    assert pair.event.principal.id == "\U0001f600"
    backslash = decoded(_with_principal_id_text(b"\\\\ud800"))
    assert backslash.event.principal.id == "\\ud800"


def test_a_surrogate_encoded_as_utf8_is_named() -> None:
    rejection = rejected(_with_principal_id_text(b"\xed\xa0\x80"))
    assert rejection.code == "invalid_json"
    assert "surrogate encoded as UTF-8" in rejection.reason


@pytest.mark.parametrize("value", [None, [1], {"a": 1}])
def test_a_value_that_fits_no_allowed_type_is_one_problem_naming_them(value: object) -> None:
    rejection = rejected(encode(inference_doc(features={"amount": value})))
    assert rejection.code == "wrong_type"
    assert (
        rejection.reason == "inference.features.amount: Input should be a boolean, integer, number or string"
    )
