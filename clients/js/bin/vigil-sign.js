#!/usr/bin/env node
// Signs JSON-lines events and prints the messages to send, one per line (or, with
// --canonical, the canonical forms). It signs with HMAC-SHA256 under the secret in
// VIGIL_SIGNING_SECRET, written as the key registry writes it (hex:..., base64:... or
// text) and never taken from the command line, where other users could read it; or,
// with --private-key FILE, with an Ed25519 private key (PEM).
import { createPrivateKey } from "node:crypto";
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { canonicalJSON, parse, signEd25519, signHmacJSON } from "../src/index.js";

const args = process.argv.slice(2);
const canonicalOnly = args.includes("--canonical");
const keyId = args[args.indexOf("--key-id") + 1];
if (!canonicalOnly && (!args.includes("--key-id") || !keyId)) {
  console.error("usage: VIGIL_SIGNING_SECRET=hex:... vigil-sign --key-id ID < events.jsonl");
  console.error("       vigil-sign --key-id ID --private-key key.pem < events.jsonl");
  process.exit(2);
}
const secret = decodeSecret(process.env.VIGIL_SIGNING_SECRET ?? "");
const keyAt = args.indexOf("--private-key");
const privateKey = keyAt >= 0 ? createPrivateKey(readFileSync(args[keyAt + 1])) : null;
let failed = false;
let number = 0;
for await (const line of createInterface({ input: process.stdin, crlfDelay: Infinity })) {
  number++;
  if (line.trim() === "") continue;
  try {
    let result;
    if (canonicalOnly) result = canonicalJSON(line);
    else if (privateKey !== null) result = signEd25519(parse(line), keyId, privateKey);
    else result = signHmacJSON(line, keyId, secret);
    process.stdout.write(Buffer.concat([result, Buffer.from("\n")]));
  } catch (error) {
    console.error(`not signed: line ${number}: ${error.message}`);
    failed = true;
  }
}
process.exitCode = failed ? 1 : 0;

function decodeSecret(text) {
  if (text.startsWith("hex:")) return Buffer.from(text.slice(4), "hex");
  if (text.startsWith("base64:")) return Buffer.from(text.slice(7), "base64");
  return Buffer.from(text, "utf8");
}
