#!/usr/bin/env node
// Signs JSON-lines events with HMAC-SHA256 and prints the messages to send, one per
// line (or, with --canonical, the canonical forms). The secret is read from
// VIGIL_SIGNING_SECRET as the key registry writes it (hex:..., base64:... or text),
// never from the command line, where other users could read it.
import { createInterface } from "node:readline";
import { canonicalJSON, signHmacJSON } from "../src/index.js";

const args = process.argv.slice(2);
const canonicalOnly = args.includes("--canonical");
const keyId = args[args.indexOf("--key-id") + 1];
if (!canonicalOnly && (!args.includes("--key-id") || !keyId)) {
  console.error("usage: VIGIL_SIGNING_SECRET=hex:... vigil-sign --key-id ID < events.jsonl");
  process.exit(2);
}
const secret = decodeSecret(process.env.VIGIL_SIGNING_SECRET ?? "");
let failed = false;
let number = 0;
for await (const line of createInterface({ input: process.stdin, crlfDelay: Infinity })) {
  number++;
  if (line.trim() === "") continue;
  try {
    const result = canonicalOnly ? canonicalJSON(line) : signHmacJSON(line, keyId, secret);
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
