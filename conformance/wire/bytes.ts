/**
 * Byte helpers for the conformance suite: hex, UTF-8 and SHA-256, written
 * for the suite alone (it shares no code with the node it checks).
 * @module
 */

import { createHash, randomBytes } from "node:crypto";

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/** Lowercase hex of `bytes`. */
export function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Bytes of a lowercase or uppercase hex string of even length. */
export function unhex(text: string): Uint8Array {
  if (text.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(text)) {
    throw new TypeError("Cannot decode hex: not an even-length hex string");
  }
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** UTF-8 bytes of `text`. */
export function utf8(text: string): Uint8Array {
  return encoder.encode(text);
}

/** Text of UTF-8 `bytes` (throws on invalid UTF-8). */
export function fromUtf8(bytes: Uint8Array): string {
  return decoder.decode(bytes);
}

/** SHA-256 of `bytes`. */
export function sha256(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(createHash("sha256").update(bytes).digest());
}

/** `n` fresh random bytes. */
export function random(n: number): Uint8Array {
  return new Uint8Array(randomBytes(n));
}

/** A fresh random hex string of `n` bytes. */
export function randomHex(n: number): string {
  return hex(random(n));
}

/** True when `value` is exactly 64 lowercase hex characters. */
export function isHex64(value: unknown): value is string {
  return typeof value === "string" && /^[0-9a-f]{64}$/.test(value);
}

/** True when `value` is exactly 128 lowercase hex characters. */
export function isHex128(value: unknown): value is string {
  return typeof value === "string" && /^[0-9a-f]{128}$/.test(value);
}
