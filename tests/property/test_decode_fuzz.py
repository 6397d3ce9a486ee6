"""Property tests: the decoder and the pipeline never raise and never lose a message."""

from __future__ import annotations

import copy
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from identity.signing import Ed25519Signer, sign_document
from identity.verify import IdentityVerifier, verify
from policies.bundle import load_bundle
from policies.engine import PolicyEngine
from schemas.decode import Decoded, Rejection, decode
from schemas.events import AccessEvent, FeedbackEvent, InferenceEvent, TrainingEvent
from schemas.records import header_bytes, header_text
from tests.factories import (
    BUILDERS,
    build_inventory,
    direct_keyring,
    ed25519_entry,
    ed25519_key_pair,
    encode,
    forged,
    key_entries,
    now_iso,
    signed,
)
from vigil.pipeline import Pipeline, RawMessage

CODES = {
    "oversize",
    "invalid_json",
    "not_an_object",
    "unknown_type",
    "missing_field",
    "unknown_field",
    "wrong_type",
    "schema",
}
MODELS = {
    "inference": InferenceEvent,
    "feedback": FeedbackEvent,
    "training": TrainingEvent,
    "access": AccessEvent,
}
_EDGE_PRIVATE, _EDGE_PUBLIC = ed25519_key_pair()
EDGE = Ed25519Signer("edge-2026", _EDGE_PRIVATE)
KEYRING = direct_keyring([*key_entries(), ed25519_entry("edge-2026", _EDGE_PUBLIC, ("edge-api",))])
BUNDLE = load_bundle(maturities=("stable", "incubating"))
INVENTORY = build_inventory()

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def outcome_of(raw: bytes) -> Decoded | Rejection:
    outcome = decode(raw)
    assert isinstance(outcome, Decoded | Rejection)
    if isinstance(outcome, Rejection):
        assert outcome.code in CODES, outcome
        assert outcome.reason
    return outcome


# --- strategies --------------------------------------------------------------------

identifiers = st.text(min_size=1, max_size=40)
int64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
finite = st.floats(allow_nan=False, allow_infinity=False)
feature_values = st.one_of(st.booleans(), int64, finite, st.text(max_size=20))

json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), int64, finite, st.text(max_size=20)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=8,
)


@st.composite
def valid_documents(draw: st.DrawFn) -> dict[str, Any]:
    """Schema-valid, unsigned event documents of every type with varied contents."""
    kind = draw(st.sampled_from(sorted(BUILDERS)))
    overrides: dict[str, Any] = {
        "event_id": draw(identifiers),
        "ts": now_iso(timedelta(seconds=draw(st.integers(-86_400, 86_400)))),
    }
    document = BUILDERS[kind](**overrides)
    document["principal"]["id"] = draw(identifiers)
    document["principal"]["roles"] = draw(st.lists(identifiers, max_size=3))
    document["resource"]["id"] = draw(identifiers)
    if kind == "inference":
        document["features"] = draw(st.dictionaries(identifiers, feature_values, max_size=8))
        document["prediction"] = {"label": draw(st.one_of(st.none(), feature_values)), "score": draw(finite)}
        document["latency_ms"] = draw(st.floats(min_value=0, allow_infinity=False))
        document["segment"] = draw(st.dictionaries(identifiers, identifiers, max_size=3))
    elif kind == "feedback":
        document["label"] = draw(feature_values)
    elif kind == "training":
        document["metrics"] = draw(st.dictionaries(identifiers, finite, max_size=4))
    else:
        document["client"]["user_agent"] = draw(st.text(max_size=60))
        document["records"] = draw(st.integers(min_value=0, max_value=2**62))
    return document


def _dict_paths(document: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = []
    for key, value in document.items():
        paths.append((*prefix, key))
        if isinstance(value, dict):
            paths += _dict_paths(value, (*prefix, key))
    return paths


def _parent(document: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    node = document
    for key in path[:-1]:
        node = node[key]
    return node


@st.composite
def mutated_messages(draw: st.DrawFn) -> bytes:
    document = signed(draw(valid_documents()))
    how = draw(st.sampled_from(["drop", "retype", "junk-key", "truncate", "flip", "insert"]))
    if how in {"drop", "retype", "junk-key"}:
        document = copy.deepcopy(document)
        path = draw(st.sampled_from(_dict_paths(document)))
        parent = _parent(document, path)
        if how == "drop":
            del parent[path[-1]]
        elif how == "retype":
            parent[path[-1]] = draw(json_values)
        else:
            parent[draw(st.text(min_size=1, max_size=12))] = draw(json_values)
        return encode(document)
    raw = bytearray(encode(document))
    if how == "truncate":
        return bytes(raw[: draw(st.integers(0, len(raw) - 1))])
    if how == "flip":
        for _ in range(draw(st.integers(1, 4))):
            at = draw(st.integers(0, len(raw) - 1))
            raw[at] ^= draw(st.integers(1, 255))
        return bytes(raw)
    at = draw(st.integers(0, len(raw)))
    return bytes(raw[:at]) + draw(st.binary(min_size=1, max_size=16)) + bytes(raw[at:])


# --- decode never raises -------------------------------------------------------------


@FAST
@given(st.binary(max_size=4096))
def test_arbitrary_bytes_never_raise(raw: bytes) -> None:
    outcome_of(raw)


@FAST
@given(json_values)
def test_arbitrary_json_never_raises(value: Any) -> None:
    outcome = outcome_of(orjson.dumps(value))
    if not isinstance(value, dict):
        assert isinstance(outcome, Rejection)
        assert outcome.code == "not_an_object"


@FAST
@given(mutated_messages())
def test_mutated_events_decode_or_reject(raw: bytes) -> None:
    outcome_of(raw)


@FAST
@given(valid_documents(), st.data())
def test_truncated_events_are_invalid_json(document: dict[str, Any], data: st.DataObject) -> None:
    raw = encode(signed(document))
    cut = data.draw(st.integers(0, len(raw) - 1))
    outcome = outcome_of(raw[:cut])
    assert isinstance(outcome, Rejection)
    assert outcome.code == "invalid_json"


@FAST
@given(valid_documents(), st.data())
def test_dropping_a_required_top_level_member_is_missing_field(
    document: dict[str, Any], data: st.DataObject
) -> None:
    fields = MODELS[document["type"]].model_fields
    required = [k for k in document if fields[k].is_required()]
    key = data.draw(st.sampled_from(required))
    del document[key]
    outcome = outcome_of(encode(document))
    assert isinstance(outcome, Rejection)
    assert outcome.code == "missing_field"
    assert key in outcome.reason


# --- canonical form and signatures -------------------------------------------------------


@FAST
@given(valid_documents())
def test_valid_documents_decode(document: dict[str, Any]) -> None:
    outcome = outcome_of(encode(signed(document)))
    assert isinstance(outcome, Decoded), outcome


@FAST
@given(valid_documents())
def test_canonical_bytes_are_idempotent(document: dict[str, Any]) -> None:
    document = signed(document)
    first = outcome_of(encode(document))
    assert isinstance(first, Decoded)
    again = orjson.loads(first.canonical)
    again["signature"] = document["signature"]
    second = outcome_of(orjson.dumps(again))
    assert isinstance(second, Decoded)
    assert second.canonical == first.canonical
    assert second.event == first.event


@FAST
@given(valid_documents())
def test_signed_documents_verify_and_forged_ones_do_not(document: dict[str, Any]) -> None:
    genuine = outcome_of(encode(signed(document)))
    fake = outcome_of(encode(forged(document)))
    assert isinstance(genuine, Decoded)
    assert isinstance(fake, Decoded)
    assert verify(genuine.event, genuine.canonical, KEYRING).reason == "ok"
    assert verify(fake.event, fake.canonical, KEYRING).reason == "bad_signature"


@FAST
@given(valid_documents(), st.data())
def test_ed25519_signatures_verify_and_any_change_breaks_them(
    document: dict[str, Any], data: st.DataObject
) -> None:
    document["source"] = "edge-api"
    genuine = outcome_of(encode(EDGE.sign(document)))
    assert isinstance(genuine, Decoded)
    assert verify(genuine.event, genuine.canonical, KEYRING).reason == "ok"
    # flip one bit of the signature: never verifies
    value = bytearray(bytes.fromhex(EDGE.sign(document)["signature"]["value"]))
    value[data.draw(st.integers(0, len(value) - 1))] ^= 1 << data.draw(st.integers(0, 7))
    tampered = {
        **EDGE.sign(document),
        "signature": {"alg": "ed25519", "key_id": "edge-2026", "value": value.hex()},
    }
    outcome = outcome_of(encode(tampered))
    assert isinstance(outcome, Decoded)
    assert verify(outcome.event, outcome.canonical, KEYRING).reason == "bad_signature"


@FAST
@given(st.binary(min_size=16, max_size=64), valid_documents())
def test_an_hmac_key_never_verifies_an_ed25519_claim(secret: bytes, document: dict[str, Any]) -> None:
    """Whatever secret a forger picks, an HMAC under an Ed25519 key id is refused."""
    document["source"] = "edge-api"
    outcome = outcome_of(encode(sign_document(document, "edge-2026", secret)))
    assert isinstance(outcome, Decoded)
    assert verify(outcome.event, outcome.canonical, KEYRING).reason == "alg_mismatch"


# --- the pipeline never loses or duplicates a message -------------------------------------

any_message = st.one_of(
    valid_documents().map(lambda d: encode(signed(d))),
    valid_documents().map(lambda d: encode(forged(d))),
    valid_documents().map(lambda d: encode(signed({**d, "auth": {"token": "not-checked"}}))),
    valid_documents().map(encode),
    mutated_messages(),
    st.binary(max_size=256),
)
arrivals = st.one_of(
    st.none(),
    st.integers(-7_200, 7_200).map(lambda s: datetime.now(UTC) + timedelta(seconds=s)),
)


@st.composite
def batches(draw: st.DrawFn) -> list[RawMessage]:
    """Messages, some of them repeated later in the batch (replays of the same bytes)."""
    values = draw(st.lists(any_message, max_size=25))
    if values:
        values += draw(st.lists(st.sampled_from(values), max_size=5))
    return [
        RawMessage(value, "vigil.events", partition=0, offset=i, timestamp=draw(arrivals))
        for i, value in enumerate(values)
    ]


def new_pipeline() -> Pipeline:
    return Pipeline(IdentityVerifier(KEYRING), PolicyEngine(BUNDLE, INVENTORY))


@SLOW
@given(batches())
def test_pipeline_puts_each_message_in_exactly_one_place(batch: list[RawMessage]) -> None:
    result = new_pipeline().process(batch)
    assert len(result.events) + len(result.rejected) == len(batch)
    places = Counter(r.offset for r in result.events) + Counter(r.offset for r in result.rejected)
    assert places == Counter(range(len(batch)))
    assert len(result.decisions) == len(result.events)
    assert [(d.event_id, d.offset) for d in result.decisions] == [
        (e.event_id, e.offset) for e in result.events
    ]
    assert {r.code for r in result.rejected} <= CODES | {"ts_out_of_range"}
    unverified = sum(not r.verified for r in result.events)
    assert sum(f.stage == "identity" for f in result.findings) == unverified
    # nothing unproven is ever allowed, and unproven requests carry no roles
    for event, decision in zip(result.events, result.decisions, strict=True):
        if not event.verified:
            assert (decision.decision, decision.roles) == ("deny", [])
            assert "zt-unverified-denied" in decision.policy_ids


@SLOW
@given(batches())
def test_a_redelivered_batch_gives_the_same_verdicts(batch: list[RawMessage]) -> None:
    """At-least-once: processing a batch again (same positions) changes no verdict."""
    pipeline = new_pipeline()
    first, second = pipeline.process(batch), pipeline.process(batch)
    assert [(e.offset, e.verified, e.verify_reason) for e in first.events] == [
        (e.offset, e.verified, e.verify_reason) for e in second.events
    ]
    assert [(d.decision, sorted(d.policy_ids)) for d in first.decisions] == [
        (d.decision, sorted(d.policy_ids)) for d in second.decisions
    ]


@given(st.binary(max_size=64))
def test_a_header_value_survives_the_rejected_table_byte_for_byte(value: bytes) -> None:
    assert header_bytes(header_text(value)) == value
