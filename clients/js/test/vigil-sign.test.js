import assert from "node:assert/strict";
import { createHmac, generateKeyPairSync, verify } from "node:crypto";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import {
  CanonicalFormError,
  canonical,
  canonicalJSON,
  formatFloat,
  parse,
  route,
  signEd25519,
  signHmac,
  signHmacJSON,
} from "../src/index.js";

const vectors = JSON.parse(readFileSync(new URL("../../testdata/vectors.json", import.meta.url), "utf8"));
const secret = Buffer.from(vectors.secret_hex, "hex");

for (const vector of vectors.valid) {
  test(`vector: ${vector.name}`, () => {
    assert.equal(canonicalJSON(vector.message).toString("utf8"), vector.canonical);
    const message = signHmacJSON(Buffer.from(vector.message, "utf8"), vectors.key_id, secret);
    assert.equal(JSON.parse(message).signature.value, vector.hmac_sha256);
    assert.equal(canonicalJSON(message).toString("utf8"), vector.canonical);
  });
}

for (const vector of vectors.invalid) {
  test(`refused like Vigil refuses it: ${vector.name}`, () => {
    assert.throws(() => canonicalJSON(vector.message), /lone surrogate/);
  });
}

test("plain objects keep HTML characters, sort by code point and write numbers as Vigil reads them", () => {
  const event = {
    type: "access",
    event_id: "e<1>&2",
    client: { user_agent: "a<b>&c \u2028 Zürich 😀", ip: "10.0.0.1" },
    features: { big: 1e21, tenth: 0.1, small: 0.000001, neg: -0.5, whole: 8, zero: -0, wide: 2n ** 64n - 1n },
    segment: { "\u{1F600}": "astral", "\uFFFF": "bmp" },
    ts: new Date(Date.UTC(2026, 2, 1, 12, 0, 0, 250)),
    skipped: undefined,
  };
  assert.equal(
    canonical(event).toString("utf8"),
    '{"client":{"ip":"10.0.0.1","user_agent":"a<b>&c \u2028 Zürich 😀"},"event_id":"e<1>&2",' +
      '"features":{"big":1e+21,"neg":-0.5,"small":1e-6,"tenth":0.1,"whole":8,"wide":18446744073709551615,"zero":0},' +
      '"segment":{"\uFFFF":"bmp","😀":"astral"},"ts":"2026-03-01T12:00:00.250Z","type":"access"}',
  );
  // The pitfalls this module exists for:
  assert.deepEqual(Object.keys({ "\u{1F600}": 1, "\uFFFF": 2 }).sort(), ["\u{1F600}", "\uFFFF"]);
  assert.equal(JSON.stringify({ x: 0.000001, y: 1e16 }), '{"x":0.000001,"y":10000000000000000}');
});

test("a signed message carries the HMAC of the canonical form, whatever signature it had", () => {
  const event = { type: "feedback", model_id: "m<1>", label: 1.5, signature: { value: "old" } };
  const message = signHmac(event, "k", secret).toString("utf8");
  const expected = createHmac("sha256", secret).update(canonical(event)).digest("hex");
  assert.equal(
    message,
    `{"label":1.5,"model_id":"m<1>","signature":{"alg":"hmac-sha256","key_id":"k","value":"${expected}"},"type":"feedback"}`,
  );
  assert.throws(() => signHmac(event, "k", Buffer.from("short")), /at least 16 bytes/);
});

test("an Ed25519 signature verifies with the public key", () => {
  const { publicKey, privateKey } = generateKeyPairSync("ed25519");
  const message = signEd25519({ type: "training", model_id: "m" }, "ed", privateKey);
  const signature = Buffer.from(JSON.parse(message).signature.value, "hex");
  assert.ok(verify(null, canonicalJSON(message), publicKey, signature));
});

test("values Vigil cannot read back identically are refused", () => {
  for (const bad of ['{"x":1e400}', '{"x":1} {}', "[1]", '{"x":01}', '{"x":"\u0001"}', '{"x":NaN}']) {
    assert.throws(() => canonicalJSON(bad), CanonicalFormError, bad);
  }
  assert.throws(() => canonicalJSON(Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d])), TypeError);
  assert.throws(() => canonicalJSON("\uFEFF{}"), CanonicalFormError);
  assert.throws(() => canonical({ x: NaN }), CanonicalFormError);
  assert.throws(() => canonical({ x: 2n ** 64n }), /beyond 64 bits/);
  assert.throws(() => canonical({ x: "\uD800" }), /lone surrogate U\+D800/);
});

test("floats are written in Vigil's shortest form and read back", () => {
  const cases = { 1e21: "1e+21", "-0": "-0.0", 0.1: "0.1", 1e16: "1e+16", 1e15: "1000000000000000.0", 0.00001: "0.00001" };
  for (const [value, written] of Object.entries(cases)) assert.equal(formatFloat(Number(value)), written);
  for (let i = 0; i < 20000; i++) {
    const bits = new DataView(new ArrayBuffer(8));
    bits.setUint32(0, (Math.random() * 2 ** 32) >>> 0);
    bits.setUint32(4, (Math.random() * 2 ** 32) >>> 0);
    const value = bits.getFloat64(0);
    if (Number.isFinite(value)) assert.equal(Number(formatFloat(value)), value);
  }
});

test("routing follows the contract", () => {
  assert.deepEqual(route({ type: "access", principal: { id: "bob" } }), { topic: "ai.access", key: "bob" });
  assert.deepEqual(route(parse('{"type":"feedback","model_id":"m<&>"}')), { topic: "ai.inference", key: "m<&>" });
  assert.throws(() => route({ type: "access", principal: 42 }), /message key/);
});
