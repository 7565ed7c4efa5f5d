/**
 * Ed25519 keys for the suite, on node:crypto (RFC 8032 signing; OpenSSL's
 * verification, which refuses S >= L and non-canonical encodings).
 * @module
 */

import { createPrivateKey, createPublicKey, sign, verify } from "node:crypto";
import { hex, random } from "./bytes.ts";

const PKCS8_PREFIX = Uint8Array.from([
  0x30,
  0x2e,
  0x02,
  0x01,
  0x00,
  0x30,
  0x05,
  0x06,
  0x03,
  0x2b,
  0x65,
  0x70,
  0x04,
  0x22,
  0x04,
  0x20,
]);
const SPKI_PREFIX = Uint8Array.from([
  0x30,
  0x2a,
  0x30,
  0x05,
  0x06,
  0x03,
  0x2b,
  0x65,
  0x70,
  0x03,
  0x21,
  0x00,
]);

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/**
 * An Ed25519 key pair: the suite's identity or a throwaway author.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { KeyPair } from "@huskies/sync/conformance";
 *
 * const key = KeyPair.generate();
 * assert.match(key.id, /^[0-9a-f]{64}$/);
 * assert.equal(KeyPair.fromSeed(key.seed).id, key.id);
 * assert.equal(key.sign(new Uint8Array(32)).length, 64);
 * ```
 */
export class KeyPair {
  /** Node id: lowercase hex of the public key. */
  readonly id: string;
  /** The 32-byte seed (kept only for saving a key file). */
  readonly seed: Uint8Array;
  readonly #key: ReturnType<typeof createPrivateKey>;

  private constructor(seed: Uint8Array) {
    this.seed = seed.slice();
    this.#key = createPrivateKey({
      key: Buffer.from(concat(PKCS8_PREFIX, seed)),
      format: "der",
      type: "pkcs8",
    });
    const spki = createPublicKey(this.#key).export({ format: "der", type: "spki" });
    this.id = hex(new Uint8Array(spki.subarray(spki.length - 32)));
  }

  /** The key pair of a 32-byte seed. */
  static fromSeed(seed: Uint8Array): KeyPair {
    if (seed.length !== 32) throw new TypeError("Cannot create key: seed must be 32 bytes");
    return new KeyPair(seed);
  }

  /** A fresh random key pair. */
  static generate(): KeyPair {
    return new KeyPair(random(32));
  }

  /** The 64-byte signature of `message`. */
  sign(message: Uint8Array): Uint8Array {
    return new Uint8Array(sign(null, message, this.#key));
  }

  /** Keeps the seed out of logs. */
  toJSON(): { id: string } {
    return { id: this.id };
  }
}

/** True when `signature` is a valid Ed25519 signature of `message` by the 32-byte `publicKey`. */
export function verifySignature(
  publicKey: Uint8Array,
  message: Uint8Array,
  signature: Uint8Array,
): boolean {
  if (publicKey.length !== 32 || signature.length !== 64) return false;
  try {
    const key = createPublicKey({
      key: Buffer.from(concat(SPKI_PREFIX, publicKey)),
      format: "der",
      type: "spki",
    });
    return verify(null, message, key, signature);
  } catch {
    return false;
  }
}
