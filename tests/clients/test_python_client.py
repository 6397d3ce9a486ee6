"""The Python client signs exactly what Vigil verifies, routes like the contract, and reports deliveries."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any, Literal

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat
from hypothesis import given
from hypothesis import strategies as st
from vigil_client import (
    CanonicalFormError,
    Ed25519Signer,
    HmacSigner,
    Publisher,
    canonical_bytes,
    encode,
    format_float,
    message_key,
    parse,
    sign,
    to_cloudevent,
    topic_for,
)

from identity.verify import verify
from schemas.canonical import canonical_bytes as vigil_canonical_bytes
from schemas.decode import Decoded, decode
from schemas.json_schema import EXAMPLES
from tests.clients.reference import load_vectors, vector_keyring, vigil_verdict
from tests.clients.vectors import REGENERATE, VECTORS_PATH, render

REPO = Path(__file__).resolve().parents[2]
CLIENT = REPO / "clients" / "python"
VECTORS = load_vectors()
SIGNER = HmacSigner(VECTORS["key_id"], bytes.fromhex(VECTORS["secret_hex"]))


def test_shared_vectors_are_what_vigil_computes() -> None:
    assert VECTORS_PATH.read_text(encoding="utf-8") == render(), (
        f"{VECTORS_PATH.name} is out of date with Vigil's canonical form: regenerate it with `{REGENERATE}`"
    )


def test_shared_vectors_hold_the_documented_test_vector() -> None:
    docs = (REPO / "docs" / "events.md").read_text(encoding="utf-8")
    vector = VECTORS["valid"][0]
    assert vector["canonical"] in docs
    assert re.search(rf"Signature value:\s+```text\s+{vector['hmac_sha256']}\s+```", docs)


@pytest.mark.parametrize("vector", VECTORS["valid"], ids=lambda v: v["name"])
def test_canonical_form_and_signature_equal_the_vector(vector: dict[str, Any]) -> None:
    signed = sign(parse(vector["message"]), SIGNER)
    assert canonical_bytes(signed) == vector["canonical"].encode("utf-8")
    assert signed["signature"]["value"] == vector["hmac_sha256"]
    reason, canonical = vigil_verdict(encode(signed), vector_keyring())
    assert reason == "ok"
    assert canonical == vector["canonical"].encode("utf-8")


@pytest.mark.parametrize("vector", VECTORS["invalid"], ids=lambda v: v["name"])
def test_messages_vigil_cannot_canonicalize_are_refused(vector: dict[str, Any]) -> None:
    with pytest.raises(CanonicalFormError, match="lone surrogate"):
        sign(parse(vector["message"]), SIGNER)


def _native_of(vector: dict[str, Any]) -> dict[str, Any]:
    """The native event a CloudEvent vector maps to, as a producer builds it before signing."""
    headers = dict(vector["headers"])
    if headers.get("content-type", "").startswith("application/cloudevents+json"):
        envelope = parse(vector["message"])
        attributes, data = envelope, envelope["data"]
    else:
        attributes = {k.removeprefix("ce_"): v for k, v in headers.items() if k.startswith("ce_")}
        data = parse(vector["message"])
    lifted = {"event_id": "id", "source": "source", "ts": "time", "type": "type"}
    native = {field: attributes[name] for field, name in lifted.items()}
    native["type"] = native["type"].removeprefix("vigil.")
    return {**data, **native}


@pytest.mark.parametrize("vector", VECTORS["cloudevents"], ids=lambda v: v["name"])
def test_a_cloudevent_is_signed_as_the_native_event_it_maps_to(vector: dict[str, Any]) -> None:
    signed = sign(_native_of(vector), SIGNER)
    assert canonical_bytes(signed) == vector["canonical"].encode("utf-8")
    assert signed["signature"]["value"] == vector["hmac_sha256"]


@pytest.mark.parametrize("mode", ["structured", "binary"])
@pytest.mark.parametrize("vector", VECTORS["cloudevents"], ids=lambda v: v["name"])
def test_a_signed_event_sent_as_a_cloudevent_verifies(
    vector: dict[str, Any], mode: Literal["structured", "binary"]
) -> None:
    signed = sign(_native_of(vector), SIGNER)
    headers, value = to_cloudevent(
        signed, mode, traceparent="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    )
    decoded = decode(value, headers=headers)
    assert isinstance(decoded, Decoded), decoded
    assert decoded.canonical == vector["canonical"].encode("utf-8")
    assert decoded.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert verify(decoded.event, decoded.canonical, vector_keyring()).reason == "ok"


def test_ed25519_signature_verifies_with_the_public_key() -> None:
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    public = private.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()
    signed = sign(EXAMPLES["training"], Ed25519Signer.from_pem("test-ed25519", pem))
    assert vigil_verdict(encode(signed), vector_keyring(public))[0] == "ok"


def test_values_whose_signature_could_not_verify_are_refused() -> None:
    with pytest.raises(CanonicalFormError, match=r"\$\.features\.n: integer .* beyond 64 bits"):
        encode({"features": {"n": 2**64}})
    with pytest.raises(CanonicalFormError, match="not a finite number"):
        encode({"score": float("nan")})
    with pytest.raises(CanonicalFormError, match="NaN is not JSON"):
        parse('{"score": NaN}')
    with pytest.raises(CanonicalFormError, match="key 1 is not a string"):
        encode({1: "x"})
    with pytest.raises(CanonicalFormError, match="bytes is not a JSON value"):
        encode({"x": b"raw"})


def test_a_secret_never_shows_and_a_short_one_is_refused() -> None:
    assert VECTORS["secret_hex"] not in repr(SIGNER)
    assert repr(SIGNER) == "HmacSigner(key_id='test-vector')"
    with pytest.raises(ValueError, match="at least 16 bytes"):
        HmacSigner.from_registry("k", "hex:00ff")
    assert HmacSigner.from_registry("k", "base64:" + "A" * 44).key_id == "k"


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=20,
)


@given(st.dictionaries(st.text(), json_values, max_size=6))
def test_any_document_is_canonical_exactly_as_vigil_makes_it(document: dict[str, Any]) -> None:
    assert canonical_bytes(document) == vigil_canonical_bytes(document)
    assert orjson.loads(encode(document)) == document


json_texts = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=20,
)


@given(st.dictionaries(st.text(), json_texts, max_size=6), st.booleans())
def test_any_json_text_is_read_and_canonical_as_vigil_does(document: dict[str, Any], escape: bool) -> None:
    text = json.dumps(document, ensure_ascii=escape)
    try:
        expected = vigil_canonical_bytes(orjson.loads(text))
    except orjson.JSONDecodeError:  # an integer too large even for a float
        with pytest.raises(CanonicalFormError):
            canonical_bytes(parse(text))
    else:
        assert canonical_bytes(parse(text.encode("utf-8"))) == expected


def test_a_byte_order_mark_and_invalid_utf8_are_refused_like_vigil_refuses_them() -> None:
    with pytest.raises(ValueError, match="BOM"):
        parse(b"\xef\xbb\xbf{}")
    with pytest.raises(UnicodeDecodeError):
        parse(b'{"x": "\xff"}')


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_any_float_is_written_as_vigil_writes_it_and_reads_back(value: float) -> None:
    assert format_float(value) == orjson.dumps(value).decode()
    assert float(format_float(value)) == value


def test_topic_and_key_follow_the_contract() -> None:
    assert topic_for(EXAMPLES["feedback"]) == "ai.inference"
    assert topic_for(EXAMPLES["training"], prefix="prod.") == "prod.ai.training"
    assert message_key(EXAMPLES["inference"]) == b"fraud-v3"
    assert message_key(EXAMPLES["access"]) == b"bob"
    with pytest.raises(ValueError, match="unknown event type 'telemetry'"):
        topic_for({"type": "telemetry"})
    with pytest.raises(ValueError, match=r"principal\.id is missing"):
        message_key({"type": "access", "principal": 42})


class FakeMessage:
    def __init__(self, topic: str, partition: int, offset: int) -> None:
        self._where = (topic, partition, offset)

    def topic(self) -> str:
        return self._where[0]

    def partition(self) -> int:
        return self._where[1]

    def offset(self) -> int:
        return self._where[2]


class FakeProducer:
    """Answers each message on ``flush``: refused when its key is in ``refuse``."""

    def __init__(self, refuse: frozenset[bytes] = frozenset()) -> None:
        self.refuse = refuse
        self.sent: list[tuple[str, bytes, bytes]] = []
        self._callbacks: list[Any] = []

    def produce(self, topic: str, value: bytes, key: bytes, *, on_delivery: Any) -> None:
        self.sent.append((topic, key, value))
        self._callbacks.append((topic, key, on_delivery))

    def poll(self, timeout: float) -> int:
        return 0

    def flush(self, timeout: float) -> int:
        for offset, (topic, key, callback) in enumerate(self._callbacks):
            error = "Broker: Not enough in-sync replicas" if key in self.refuse else None
            callback(error, FakeMessage(topic, 0, offset))
        self._callbacks.clear()
        return 0


def test_publisher_signs_routes_and_reports_each_delivery() -> None:
    producer = FakeProducer(refuse=frozenset({b"bob"}))
    publisher = Publisher("unused:9092", SIGNER, topic_prefix="prod.", producer=producer)
    for name in ("inference", "access", "training"):
        publisher.send(EXAMPLES[name])
    report = publisher.flush()
    assert [(d.event_id, d.topic) for d in report.delivered] == [
        (EXAMPLES["inference"]["event_id"], "prod.ai.inference"),
        (EXAMPLES["training"]["event_id"], "prod.ai.training"),
    ]
    assert [(f.event_id, f.reason) for f in report.failed] == [
        (EXAMPLES["access"]["event_id"], "Broker: Not enough in-sync replicas")
    ]
    assert not report.ok
    assert [key for _, key, _ in producer.sent] == [b"fraud-v3", b"bob", b"fraud-v3"]
    for _, _, value in producer.sent:
        assert vigil_verdict(value, vector_keyring())[0] == "ok"
    assert publisher.flush().delivered == []


def test_publisher_refuses_an_oversize_event_before_queueing_it() -> None:
    producer = FakeProducer()
    publisher = Publisher("unused:9092", SIGNER, producer=producer)
    event = {**EXAMPLES["access"], "client": {"ip": "10.0.0.1", "user_agent": "x" * 70_000}}
    with pytest.raises(ValueError, match=r"is 70\d{3} bytes, limit is 65536"):
        publisher.send(event)
    assert producer.sent == []
    assert publisher.flush().ok


def test_an_unanswered_send_is_reported_as_such() -> None:
    class SilentProducer(FakeProducer):
        def flush(self, timeout: float) -> int:
            return len(self._callbacks)

    publisher = Publisher("unused:9092", SIGNER, producer=SilentProducer())
    publisher.send(EXAMPLES["feedback"])
    assert publisher.flush(timeout=0.1).unanswered == [EXAMPLES["feedback"]["event_id"]]


def test_client_declares_no_dependency_and_imports_with_the_standard_library_alone(tmp_path: Path) -> None:
    project = tomllib.loads((CLIENT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["dependencies"] == []
    assert project["optional-dependencies"] == {
        "kafka": ["confluent-kafka>=2.6"],
        "ed25519": ["cryptography>=43"],
    }
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(CLIENT)],
        check=True,
        timeout=300,
    )
    # -S: no site-packages at all, only the standard library and the installed client.
    script = (
        f"import sys; sys.path.insert(0, {str(target)!r}); import vigil_client as v, json;"
        "s = v.HmacSigner('k', bytes(32));"
        "m = v.encode(v.sign({'type': 'access', 'principal': {'id': 'bob'}, 'n': 1e21}, s));"
        "print(m.decode()); print(v.message_key(json.loads(m)).decode())"
    )
    done = subprocess.run(
        [sys.executable, "-S", "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    message, key = done.stdout.splitlines()
    assert json.loads(message)["n"] == 1e21
    assert '"n":1e+21' in message
    assert key == "bob"


def test_a_send_the_producer_refuses_outright_raises_and_leaves_nothing_pending() -> None:
    class RefusingProducer(FakeProducer):
        def produce(self, topic: str, value: bytes, key: bytes, *, on_delivery: Any) -> None:
            raise RuntimeError("Local: Unknown topic")

    publisher = Publisher("unused:9092", SIGNER, producer=RefusingProducer())
    with pytest.raises(RuntimeError, match="Unknown topic"):
        publisher.send(EXAMPLES["feedback"])
    assert publisher.flush().ok


def test_a_full_local_queue_is_drained_then_the_send_is_retried() -> None:
    class BusyOnceProducer(FakeProducer):
        busy = True

        def produce(self, topic: str, value: bytes, key: bytes, *, on_delivery: Any) -> None:
            if self.busy:
                self.busy = False
                raise BufferError("Local: Queue full")
            super().produce(topic, value, key, on_delivery=on_delivery)

    producer = BusyOnceProducer()
    publisher = Publisher("unused:9092", SIGNER, producer=producer)
    publisher.send(EXAMPLES["feedback"])
    assert [d.event_id for d in publisher.flush().delivered] == [EXAMPLES["feedback"]["event_id"]]
