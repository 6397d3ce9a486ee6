// Sign events in Vigil's canonical form (docs/events.md, "Signing"), byte for byte.
//
// Vigil parses each message and serializes it again to get the bytes a signature
// covers: keys sorted by code point at every level, no whitespace, UTF-8 with only
// '"', '\' and control characters escaped, and numbers as its parser reads them (an
// integer literal stays an integer, anything else is a 64-bit float in shortest form).
// JSON.parse and JSON.stringify cannot produce that form: stringify keeps the keys'
// insertion order, JavaScript has one number type (parse loses whether a literal was 1
// or 1.0, and the digits of integers beyond 2^53), and stringify writes 0.000001 and
// 1e16 where Vigil writes 1e-6 and 1e+16. So this module parses and writes JSON itself,
// and writes the message with the same code as the canonical form.
import { createHmac, sign as cryptoSign } from "node:crypto";

const INT_MIN = -(2n ** 63n);
const UINT_MAX = 2n ** 64n - 1n;
const TOPIC_BY_TYPE = {
  inference: "ai.inference",
  feedback: "ai.inference",
  training: "ai.training",
  access: "ai.access",
};

/** A number as written in a message, kept as its literal until it is re-serialized. */
export class JsonNumber {
  constructor(literal) {
    this.literal = literal;
  }
}

export class CanonicalFormError extends Error {}

/** Canonical bytes of an event (a plain object, or the result of parse()), without "signature". */
export function canonical(event) {
  return Buffer.from(write(unsigned(event)), "utf8");
}

/** Canonical bytes of a JSON message (string or Buffer), read as Vigil reads it. */
export function canonicalJSON(message) {
  return canonical(parse(message));
}

/** The message to send: the event with an HMAC-SHA256 "signature" member, in canonical form. */
export function signHmac(event, keyId, secret) {
  if (Buffer.byteLength(secret) < 16) {
    throw new RangeError("an HMAC secret is at least 16 bytes (32 random recommended)");
  }
  const value = createHmac("sha256", secret).update(canonical(event)).digest("hex");
  return signedMessage(event, "hmac-sha256", keyId, value);
}

/** signHmac for an event already written as JSON. */
export function signHmacJSON(message, keyId, secret) {
  return signHmac(parse(message), keyId, secret);
}

/** The message signed with the producer's Ed25519 private key (a crypto KeyObject or PEM). */
export function signEd25519(event, keyId, privateKey) {
  const value = cryptoSign(null, canonical(event), privateKey).toString("hex");
  return signedMessage(event, "ed25519", keyId, value);
}

/**
 * Topic (without the deployment's prefix) and message key: principal.id for access
 * events, model_id for the others. Produce with the Java client's partitioner (murmur2;
 * KafkaJS's default partitioner uses it too) so the same key lands on the same partition.
 */
export function route(event) {
  const document = event instanceof Map ? Object.fromEntries(event) : event;
  const topic = TOPIC_BY_TYPE[document.type];
  if (topic === undefined) throw new CanonicalFormError(`unknown event type ${JSON.stringify(document.type)}`);
  let key = document.model_id;
  if (document.type === "access") {
    const principal = document.principal instanceof Map ? Object.fromEntries(document.principal) : document.principal;
    key = principal?.id;
  }
  if (typeof key !== "string" || key === "") {
    throw new CanonicalFormError("the message key (principal.id or model_id) is missing");
  }
  return { topic, key };
}

/**
 * A float as Vigil writes it: shortest round-trip digits, plain while the decimal point
 * falls within the first 16 digit positions and at most four zeros follow it
 * ("0.00001", "1000000000000000.0"), exponent notation otherwise ("1e+16", "1e-6").
 */
export function formatFloat(value) {
  if (!Number.isFinite(value)) throw new CanonicalFormError(`${value} is not a finite number`);
  if (value === 0) return Object.is(value, -0) ? "-0.0" : "0.0";
  const sign = value < 0 ? "-" : "";
  // toExponential() without digits gives the shortest digits that read back as the value.
  const [mantissa, exponentText] = Math.abs(value).toExponential().split("e");
  const exponent = Number(exponentText);
  const digits = mantissa.replace(".", "").replace(/0+$/, "");
  const count = digits.length;
  const point = exponent + 1;
  if (count <= point && point <= 16) return `${sign}${digits}${"0".repeat(point - count)}.0`;
  if (point > 0 && point <= 16) return `${sign}${digits.slice(0, point)}.${digits.slice(point)}`;
  if (point > -5 && point <= 0) return `${sign}0.${"0".repeat(-point)}${digits}`;
  const written = count === 1 ? digits : `${digits[0]}.${digits.slice(1)}`;
  return `${sign}${written}e${exponent > 0 ? "+" : "-"}${Math.abs(exponent)}`;
}

function unsigned(event) {
  if (event instanceof Map) {
    const copy = new Map(event);
    copy.delete("signature");
    return copy;
  }
  if (event === null || typeof event !== "object" || Array.isArray(event)) {
    throw new CanonicalFormError("an event is a JSON object");
  }
  const { signature: _ignored, ...rest } = event;
  return rest;
}

function signedMessage(event, alg, keyId, value) {
  const signature = { alg, key_id: keyId, value };
  const message = event instanceof Map ? new Map(event).set("signature", signature) : { ...event, signature };
  return Buffer.from(write(message), "utf8");
}

function write(value) {
  if (value === null) return "null";
  if (value === true) return "true";
  if (value === false) return "false";
  if (typeof value === "string") return quote(value);
  if (typeof value === "number") return writeNumber(value);
  if (typeof value === "bigint") return writeInteger(value);
  if (value instanceof JsonNumber) return writeLiteral(value.literal);
  if (Array.isArray(value)) return `[${value.map((item) => write(item === undefined ? null : item)).join(",")}]`;
  if (value instanceof Map) return writeObject([...value.entries()]);
  if (typeof value === "object") {
    if (typeof value.toJSON === "function") return write(value.toJSON());
    return writeObject(Object.entries(value).filter(([, item]) => item !== undefined));
  }
  throw new CanonicalFormError(`${typeof value} is not a JSON value`);
}

function writeObject(entries) {
  // UTF-8 byte order is code point order; the default sort compares UTF-16 units and
  // puts U+E000..U+FFFF after characters beyond U+FFFF.
  // Keys compare as written, before escaping (quote() refuses lone surrogates first).
  const keyed = entries.map(([key, item]) => [quote(key), Buffer.from(key, "utf8"), item]);
  keyed.sort((a, b) => Buffer.compare(a[1], b[1]));
  return `{${keyed.map(([quoted, , item]) => `${quoted}:${write(item)}`).join(",")}}`;
}

function writeNumber(value) {
  // A JavaScript number has no integer type: whole numbers JSON.stringify would write
  // without a fraction are sent as integers, so Vigil reads the integer that was signed.
  if (Number.isSafeInteger(value)) return String(value); // -0 becomes "0", as in JSON.stringify
  return formatFloat(value);
}

function writeInteger(value) {
  if (value < INT_MIN || value > UINT_MAX) {
    throw new CanonicalFormError(`integer ${value} is beyond 64 bits; Vigil would read it as a float`);
  }
  return value.toString();
}

function writeLiteral(literal) {
  if (!/[.eE]/.test(literal)) {
    const integer = BigInt(literal);
    if (integer >= INT_MIN && integer <= UINT_MAX) return integer.toString();
  }
  const value = Number(literal);
  if (!Number.isFinite(value)) throw new CanonicalFormError(`number ${literal} is not a finite 64-bit float`);
  return formatFloat(value);
}

const SHORT_ESCAPES = { '"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t" };

function quote(text) {
  let out = '"';
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    const unit = text.charCodeAt(i);
    if (SHORT_ESCAPES[ch] !== undefined) {
      out += SHORT_ESCAPES[ch];
    } else if (unit < 0x20) {
      out += `\\u00${unit.toString(16).padStart(2, "0")}`;
    } else if (unit >= 0xd800 && unit <= 0xdbff) {
      const next = text.charCodeAt(i + 1);
      if (!(next >= 0xdc00 && next <= 0xdfff)) throw loneSurrogate(unit);
      out += ch + text[i + 1];
      i++;
    } else if (unit >= 0xdc00 && unit <= 0xdfff) {
      throw loneSurrogate(unit);
    } else {
      out += ch;
    }
  }
  return `${out}"`;
}

function loneSurrogate(unit) {
  return new CanonicalFormError(`lone surrogate U+${unit.toString(16).toUpperCase()} in a string: not valid Unicode`);
}

/**
 * Parse a JSON message keeping each number's literal (JsonNumber) and each object as a
 * Map, refusing what Vigil refuses: invalid UTF-8, a byte order mark, trailing data.
 */
export function parse(message) {
  const text =
    typeof message === "string" ? message : new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(message);
  const parser = new Parser(text);
  parser.space();
  const value = parser.value();
  parser.space();
  if (parser.at < text.length) parser.fail("data after the JSON value");
  if (!(value instanceof Map)) throw new CanonicalFormError("a message is a JSON object");
  return value;
}

const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;

class Parser {
  constructor(text) {
    this.text = text;
    this.at = 0;
  }

  fail(what) {
    throw new CanonicalFormError(`invalid JSON at character ${this.at}: ${what}`);
  }

  space() {
    while (" \t\n\r".includes(this.text[this.at] ?? "x")) this.at++;
  }

  value() {
    const ch = this.text[this.at];
    if (ch === "{") return this.object();
    if (ch === "[") return this.array();
    if (ch === '"') return this.string();
    for (const [word, result] of [["true", true], ["false", false], ["null", null]]) {
      if (this.text.startsWith(word, this.at)) {
        this.at += word.length;
        return result;
      }
    }
    NUMBER.lastIndex = this.at;
    const match = NUMBER.exec(this.text);
    if (match === null) this.fail("expected a value");
    this.at += match[0].length;
    return new JsonNumber(match[0]);
  }

  object() {
    const result = new Map();
    this.at++;
    this.space();
    if (this.text[this.at] === "}") {
      this.at++;
      return result;
    }
    for (;;) {
      this.space();
      if (this.text[this.at] !== '"') this.fail("expected a key");
      const key = this.string();
      this.space();
      if (this.text[this.at++] !== ":") this.fail("expected ':'");
      this.space();
      result.set(key, this.value());
      this.space();
      const next = this.text[this.at++];
      if (next === "}") return result;
      if (next !== ",") this.fail("expected ',' or '}'");
    }
  }

  array() {
    const result = [];
    this.at++;
    this.space();
    if (this.text[this.at] === "]") {
      this.at++;
      return result;
    }
    for (;;) {
      this.space();
      result.push(this.value());
      this.space();
      const next = this.text[this.at++];
      if (next === "]") return result;
      if (next !== ",") this.fail("expected ',' or ']'");
    }
  }

  string() {
    let out = "";
    this.at++;
    for (;;) {
      const ch = this.text[this.at++];
      if (ch === undefined) this.fail("unterminated string");
      if (ch === '"') break;
      if (ch < " ") this.fail("control character in a string");
      if (ch !== "\\") {
        out += ch;
        continue;
      }
      const escape = this.text[this.at++];
      const simple = { '"': '"', "\\": "\\", "/": "/", b: "\b", f: "\f", n: "\n", r: "\r", t: "\t" }[escape];
      if (simple !== undefined) {
        out += simple;
      } else if (escape === "u" && /^[0-9a-fA-F]{4}$/.test(this.text.slice(this.at, this.at + 4))) {
        out += String.fromCharCode(parseInt(this.text.slice(this.at, this.at + 4), 16));
        this.at += 4;
      } else {
        this.fail("bad escape");
      }
    }
    quote(out); // refuses lone surrogates now, with the reason
    return out;
  }
}
