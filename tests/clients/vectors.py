"""The shared test vectors every client is checked against, made by Vigil's own code.

Each vector is a message as a producer might send it (JSON text: literal forms,
escapes, whitespace and key order all matter) with the canonical form and HMAC that
Vigil computes for it; invalid vectors are messages Vigil cannot canonicalize, which a
client must refuse. ``.venv/bin/python -m tests.clients.vectors`` rewrites
``clients/testdata/vectors.json``; a test keeps the file equal to what this makes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from identity.signing import hmac_hex
from schemas.decode import Decoded, Rejection, decode

VECTORS_PATH = Path(__file__).resolve().parents[2] / "clients" / "testdata" / "vectors.json"
REGENERATE = ".venv/bin/python -m tests.clients.vectors"
SECRET_HEX = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
KEY_ID = "test-vector"

_ACCESS_HEAD = (
    '"type":"access","schema_version":1,"ts":"2026-03-01T12:00:00.250Z","source":"data-portal",'
    '"resource":{"kind":"dataset","id":"transactions-2026"},"outcome":"allowed","mfa":true'
)
_INFERENCE_HEAD = (
    '"type":"inference","schema_version":1,"ts":"2026-03-01T12:00:00Z","source":"checkout-api",'
    '"principal":{"id":"svc-checkout","kind":"service"},"action":"infer",'
    '"resource":{"kind":"model","id":"fraud-v3"},"model_id":"fraud-v3","model_version":"3",'
    '"artifact_digest":"sha256:00","request_id":"r-1","latency_ms":11.7'
)
_TRAINING_HEAD = (
    '"type":"training","schema_version":1,"ts":"2026-03-01T12:00:00+01:00","source":"ml-platform",'
    '"principal":{"id":"alice","kind":"user"},"action":"evaluate","resource":{"kind":"model","id":"m"},'
    '"run_id":"run-1","model_id":"m","dataset_id":"d","dataset_digest":"sha256:11","code_commit":"c0ffee"'
)

VALID = {
    "the test vector of docs/events.md": """{
  "type": "access",
  "event_id": "tv-0001",
  "schema_version": 1,
  "ts": "2026-03-01T12:00:00.250Z",
  "source": "data-portal",
  "principal": {"kind": "user", "id": "bob", "roles": ["analyst"]},
  "action": "read",
  "resource": {"kind": "dataset", "id": "transactions-2026"},
  "outcome": "allowed",
  "client": {"ip": "10.0.4.17", "user_agent": "Portal/2.1 (Zürich)"},
  "mfa": true,
  "records": 120
}
""",
    "HTML characters < > & stay unescaped": "{"
    + _ACCESS_HEAD
    + ',"event_id":"tv-html","action":"read","principal":{"id":"a&b<c>","kind":"user"},'
    '"client":{"ip":"10.0.0.1","user_agent":"<script>alert(\\"x\\")</script> & co >= 1"}}',
    "non-ASCII text is UTF-8, not \\u escapes": "{"
    + _INFERENCE_HEAD
    + ',"event_id":"tv-unicode","features":{"city":"Zürich","名前":"東京","ключ":"значение",'
    '"emoji":"😀 beyond the BMP","mixed":"naïve café \u2013 \u201cquotes\u201d"},"prediction":{"label":"ja"},'
    '"segment":{"région":"Île-de-France"}}',
    "escaped input is written raw": "{"
    + _INFERENCE_HEAD
    + ',"event_id":"tv-escapes","features":{"u":"\\u00fc\\u6771","pair":"\\ud83d\\ude00",'
    '"slash":"a\\/b","tab":"a\\u0009b","nul":"\\u0000","del":"\\u007f"},"prediction":{}}',
    "control characters and separators": "{"
    + _ACCESS_HEAD
    + ',"event_id":"tv-control","action":"login","principal":{"id":"bob","kind":"user"},'
    '"client":{"ip":"10.0.0.1","user_agent":'
    '"\\b\\f\\n\\r\\t\\u0001\\u001f \\"quoted\\" \\\\ \u2028\u2029\u007f"}}',
    "keys sorted by code point, not UTF-16 unit": "{"
    + _INFERENCE_HEAD
    + ',"event_id":"tv-key-order","features":{"\U0001f600":1,"\ufb01":2,"\uffff":3,"\ue000":4,'
    '"z":5,"Z":6,"é":7,"a":8,"aa":9,"A":10,"_":11,"0":12},"prediction":{}}',
    "keys sorted as written, not as escaped": "{"
    + _INFERENCE_HEAD
    + ',"event_id":"tv-escaped-keys","features":{"aZ":1,"a\\u0001":2,"a\\"":3,"a\\\\":4,"a\\n":5,"a ":6},'
    '"prediction":{}}',
    "large and negative integers": "{"
    + _ACCESS_HEAD
    + ',"event_id":"tv-integers","action":"export","principal":{"id":"bob","kind":"user"},'
    '"client":{"ip":"10.0.0.1"},"records":9223372036854775807,"bytes":0}',
    "integer features at the 64-bit limits": "{"
    + _INFERENCE_HEAD
    + ',"event_id":"tv-int-features","features":{"max":9223372036854775807,"min":-9223372036854775808,'
    '"neg":-42,"zero":0,"negative_zero":-0,"big":123456789012345678},"prediction":{"label":-1}}',
    "floats in shortest form": "{"
    + _INFERENCE_HEAD
    + ',"event_id":"tv-floats","features":{"e21":1e21,"negative_zero":-0.0,"tenth":0.1,"e_minus_7":1e-7,'
    '"five_e_minus_5":0.00005,"e16":1e16,"e15":1e15,"trailing_zero":11.70,"one":1.0,"upper_e":1E2,'
    '"tiny":5e-324,"huge":1.7976931348623157e308,"third":0.3333333333333333,"negative":-2.5e-8,'
    '"pi":3.141592653589793,"e_minus_4":0.0001,"e_minus_5":0.00001,"e_minus_6":0.000001,'
    '"below_e16":9999999999999998.0,"above_e16":12345678901234567.0,"e22":1.2345e22,"neg_big":-1e300,'
    '"plus_exp":2E+3,"fraction_exp":0.5e-3},"prediction":{"score":0.1291}}',
    "integers beyond 64 bits become floats": "{"
    + _TRAINING_HEAD
    + ',"event_id":"tv-wide-integers","metrics":{"u64_max":18446744073709551615,"u64_max_plus_1":'
    '18446744073709551616,"below_i64":-9223372036854775809,"i64_max":9223372036854775807,'
    '"huge":123456789012345678901234567890}}',
    "nulls, empty objects and arrays": "{"
    + _INFERENCE_HEAD
    + ',"event_id":"tv-empty","features":{},"prediction":{"label":null,"score":null},"segment":{},'
    '"auth":null,"tokens":{"prompt":0,"completion":7}}',
    "a signature member is not signed": "{"
    + _TRAINING_HEAD
    + ',"event_id":"tv-replaced-signature","signature":{"alg":"hmac-sha256","key_id":"old",'
    '"value":"' + "0" * 64 + '"},"metrics":{"auc":0.9412}}',
}

INVALID = {
    "lone high surrogate": "{" + _INFERENCE_HEAD + ',"event_id":"tv-lone-high","features":{"s":"a\\ud800b"},'
    '"prediction":{}}',
    "lone low surrogate": "{" + _INFERENCE_HEAD + ',"event_id":"tv-lone-low","features":{"s":"\\udc00"},'
    '"prediction":{}}',
    "reversed surrogate pair": "{" + _INFERENCE_HEAD + ',"event_id":"tv-reversed","features":'
    '{"s":"\\ude00\\ud83d"},"prediction":{}}',
}


CLOUDEVENTS: dict[str, tuple[list[tuple[str, str]], str]] = {
    "structured CloudEvent: id, source, time and type are lifted into the native event": (
        [("content-type", "application/cloudevents+json; charset=utf-8")],
        '{"specversion":"1.0","id":"tv-ce-structured","source":"data-portal","time":"2026-03-01T12:00:00.250Z",'
        '"type":"vigil.access","datacontenttype":"application/json","subject":"not signed",'
        '"traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",'
        '"data":{"schema_version":1,"resource":{"kind":"dataset","id":"transactions-2026"},"outcome":"allowed",'
        '"mfa":true,"action":"read","principal":{"id":"bob","kind":"user"},"client":{"ip":"10.0.0.1"}}}',
    ),
    "binary CloudEvent: attributes in ce_ headers, data with OpenTelemetry GenAI attributes": (
        [
            ("ce_specversion", "1.0"),
            ("ce_id", "tv-ce-binary"),
            ("ce_source", "checkout-api"),
            ("ce_type", "vigil.inference"),
            ("ce_time", "2026-03-01T12:00:00Z"),
            ("content-type", "application/json"),
            ("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
        ],
        '{"schema_version":1,"principal":{"id":"svc-checkout","kind":"service"},"action":"infer",'
        '"resource":{"kind":"model","id":"support-bot"},"model_id":"support-bot","model_version":"3",'
        '"artifact_digest":"sha256:00","request_id":"r-1","latency_ms":840.5,"features":{},"prediction":{},'
        '"attributes":{"gen_ai.operation.name":"chat","gen_ai.request.model":"gpt-4o",'
        '"gen_ai.request.temperature":0.2,"gen_ai.usage.input_tokens":1200,"gen_ai.usage.output_tokens":87}}',
    ),
}
"""CloudEvents as Kafka headers and value; the signature covers the native event they map to."""


def build() -> dict[str, Any]:
    """Every vector, computed by Vigil's decoder, canonical form and HMAC."""
    secret = bytes.fromhex(SECRET_HEX)
    valid = []
    for name, message in VALID.items():
        decoded = decode(message.encode("utf-8"))
        assert isinstance(decoded, Decoded), f"{name}: {decoded}"
        canonical = decoded.canonical
        valid.append(
            {
                "name": name,
                "message": message,
                "canonical": canonical.decode("utf-8"),
                "hmac_sha256": hmac_hex(secret, canonical),
            }
        )
    invalid = []
    for name, message in INVALID.items():
        rejected = decode(message.encode("utf-8"))
        assert isinstance(rejected, Rejection), name
        invalid.append({"name": name, "message": message, "vigil_rejects_with": rejected.code})
    cloudevents = []
    for name, (headers, message) in CLOUDEVENTS.items():
        decoded = decode(message.encode("utf-8"), headers=[(k, v.encode("utf-8")) for k, v in headers])
        assert isinstance(decoded, Decoded), f"{name}: {decoded}"
        cloudevents.append(
            {
                "name": name,
                "headers": [list(header) for header in headers],
                "message": message,
                "canonical": decoded.canonical.decode("utf-8"),
                "hmac_sha256": hmac_hex(secret, decoded.canonical),
            }
        )
    return {
        "about": (
            "Test vectors of Vigil's canonical form (docs/events.md, 'Signing'), made by Vigil's own code;"
            f" regenerate with `{REGENERATE}`. Each valid message's canonical form and HMAC-SHA256 under"
            " secret_hex; each invalid message must be refused. Each CloudEvent (Kafka headers and"
            " value, docs/events.md 'CloudEvents over Kafka') with the canonical form and HMAC of the"
            " native event it maps to, whose signature goes in data.signature."
        ),
        "secret_hex": SECRET_HEX,
        "key_id": KEY_ID,
        "valid": valid,
        "invalid": invalid,
        "cloudevents": cloudevents,
    }


def render() -> str:
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    VECTORS_PATH.write_text(render(), encoding="utf-8")
